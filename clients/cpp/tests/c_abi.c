/* The C ABI compiles and links as C99: versions, ownership, errors, messages. */
#include <stdio.h>
#include <string.h>

#include "vinom.h"

static int failures = 0;

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                               \
        }                                                             \
    } while (0)

int main(void) {
    vinom_token* token = NULL;
    vinom_session* session = NULL;
    const char* bad = "{\"version\": 3}";
    vinom_client* client = NULL;
    const char* ping = "{\"t\":\"ping\"}";
    uint8_t out[VINOM_MAX_DATAGRAM];
    char text[64];
    size_t len = 0, text_len = 0;
    vinom_lobby* lobby = NULL;
    vinom_lobby_event lobby_event = VINOM_LOBBY_NONE;
    int64_t id = -1;
    long spins = 0;

    CHECK(vinom_abi_version() == VINOM_ABI_VERSION);
    CHECK(vinom_protocol_version() == 3);
    CHECK(vinom_game_protocol() == 4);
    CHECK(strncmp(vinom_version_string(), "vinom-native ", 13) == 0);
    CHECK(strcmp(vinom_status_name(VINOM_OK), "ok") == 0);
    CHECK(strcmp(vinom_status_name(VINOM_NO_MEMORY), "no_memory") == 0);
    CHECK(vinom_token_parse(bad, strlen(bad), &token) == VINOM_BAD_JSON);
    CHECK(token == NULL);
    CHECK(vinom_token_host_count(NULL) == 0);
    CHECK(vinom_session_new(NULL, 0, &session) == VINOM_INVALID_ARGUMENT);
    CHECK(vinom_session_request(NULL, out, sizeof out, &len) == VINOM_INVALID_ARGUMENT);
    /* The client and the message calls. */
    CHECK(vinom_client_new(NULL, 0, 0.0, 0.0, &client) == VINOM_INVALID_ARGUMENT);
    CHECK(client == NULL);
    CHECK(vinom_client_update(NULL, 0.0) == VINOM_INVALID_ARGUMENT);
    CHECK(vinom_client_state(NULL) == VINOM_STATE_FAILED);
    CHECK(strcmp(vinom_client_failure(NULL), "") == 0);
    CHECK(strcmp(vinom_client_ended(NULL), "") == 0);
    CHECK(vinom_client_host_closed(NULL) == VINOM_INVALID_ARGUMENT);
    CHECK(vinom_client_socket_error(NULL, 0) == VINOM_INVALID_ARGUMENT);
    CHECK(strcmp(vinom_status_name(VINOM_ENDED), "ended") == 0 && VINOM_CLIENT_ENDED == 5);
    CHECK(vinom_message_from_json(ping, strlen(ping), out, sizeof out, &len) == VINOM_OK);
    CHECK(len == 8 && out[0] == 0x81); /* 81 a1 74 a4 70 69 6e 67 */
    CHECK(vinom_message_to_json(out, len, text, sizeof text, &text_len) == VINOM_OK);
    CHECK(text_len == strlen(ping) && memcmp(text, ping, text_len) == 0);
    /* Schema snapshots: NULL handles; nothing is asked (game protocol 4). */
    CHECK(vinom_snapshots_schema(NULL, NULL, 0) == VINOM_INVALID_ARGUMENT);
    CHECK(vinom_snapshots_asking(NULL) == 0);
    CHECK(vinom_inputs_message_for(NULL, NULL, out, sizeof out, &len) == VINOM_INVALID_ARGUMENT);
    CHECK(vinom_snapshots_state(NULL, 0, text, sizeof text, &len) == VINOM_INVALID_ARGUMENT);
    /* The lobby: NULL arguments, and a trust file that cannot be read fails the
     * handle, failed with its reason and one failed event. */
    CHECK(vinom_lobby_new(NULL, 7350, NULL, NULL, 0.0, 0.0, &lobby) == VINOM_INVALID_ARGUMENT);
    CHECK(vinom_lobby_update(NULL, 0.0) == VINOM_INVALID_ARGUMENT);
    CHECK(vinom_lobby_state(NULL) == VINOM_LOBBY_STATE_FAILED);
    CHECK(strcmp(vinom_lobby_failure(NULL), "") == 0);
    CHECK(vinom_lobby_new("127.0.0.1", 7350, "/nonexistent.pem", NULL, 0.0, 0.0, &lobby) ==
          VINOM_OK);
    CHECK(lobby != NULL);
    /* The trust is read on the lobby's worker thread: failed by an update. */
    for (spins = 0; spins < 2000000000L && vinom_lobby_state(lobby) != VINOM_LOBBY_STATE_FAILED;
         ++spins) {
        CHECK(vinom_lobby_update(lobby, 1.0) == VINOM_OK);
    }
    CHECK(vinom_lobby_state(lobby) == VINOM_LOBBY_STATE_FAILED);
    CHECK(strcmp(vinom_lobby_failure(lobby),
                 "trust: cannot read a PEM certificate from /nonexistent.pem") == 0);
    CHECK(vinom_lobby_hello(lobby, "Ann", NULL, &id) == VINOM_UNEXPECTED);
    CHECK(id == 0);
    CHECK(vinom_lobby_hello(lobby, NULL, NULL, &id) == VINOM_INVALID_ARGUMENT);
    CHECK(vinom_lobby_poll(lobby, &lobby_event, &id, text, sizeof text, &len) == VINOM_OK);
    CHECK(lobby_event == VINOM_LOBBY_FAILED && len == 0);
    CHECK(vinom_lobby_poll(lobby, &lobby_event, &id, text, sizeof text, &len) == VINOM_OK);
    CHECK(lobby_event == VINOM_LOBBY_NONE);
    CHECK(strcmp(vinom_lobby_token(lobby), "") == 0);
    vinom_lobby_free(lobby);
    vinom_lobby_free(NULL);
    vinom_token_free(NULL);
    vinom_session_free(NULL);
    vinom_client_free(NULL);
    if (failures == 0) printf("c_abi: ok\n");
    return failures ? 1 : 0;
}
