/* tictactoe.c: a whole game client in C over vinom.h alone, as a consumer of
 * the installed library builds it (docs/clients.md, "Installing": CMake's
 * find_package(vinom) or pkg-config). It signs in to the lobby over TLS as a
 * guest, queues for tictactoe, takes the seat of match_found over UDP, plays
 * the first free cell on each of its turns, declines the rematch, and exits 0
 * once the match has finished.
 *
 *   vinom_tictactoe HOST PORT TRUST_PEM [NAME]
 *
 * Prints JSON lines: {"event": "library", "version": ...} (vinom_version_string),
 * {"event": "match_found", "token": ...}, {"event": "welcome"}, and
 * {"event": "message", "message": ...} for each of the room's messages; a
 * failure is {"event": "failed", "reason": ...} with its line on stderr, exit 1.
 * POSIX sockets for the UDP seat (the library's lobby has its own). */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vinom.h"

static double monotonic(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void frame(void) {
    const struct timespec wait = {0, 10000000}; /* 100 frames a second */
    nanosleep(&wait, NULL);
}

static int fail(const char* reason, const char* detail) {
    printf("{\"event\": \"failed\", \"reason\": \"%s\"}\n", reason);
    fprintf(stderr, "vinom_tictactoe: %s: %s\n", reason, detail);
    return 1;
}

/* The lobby: hello as a guest, queue, the token of match_found (malloc'd). */
static char* seat_from_lobby(const char* host, uint16_t port, const char* trust,
                             const char* name) {
    static char frame_json[65536];
    vinom_lobby* lobby = NULL;
    char* token = NULL;
    double deadline = monotonic() + 60.0;
    if (vinom_lobby_new(host, port, trust, NULL, monotonic(), 10.0, &lobby) != VINOM_OK) {
        fail("lobby", "vinom_lobby_new failed");
        return NULL;
    }
    while (!token && monotonic() < deadline) {
        vinom_lobby_event event;
        int64_t id = 0;
        size_t len = 0;
        vinom_lobby_update(lobby, monotonic());
        while (!token && vinom_lobby_poll(lobby, &event, &id, frame_json, sizeof frame_json,
                                          &len) == VINOM_OK && event != VINOM_LOBBY_NONE) {
            if (event == VINOM_LOBBY_CONNECTED) {
                vinom_lobby_hello(lobby, name, NULL, &id); /* no credentials: a guest */
            } else if (event == VINOM_LOBBY_WELCOME) {
                vinom_lobby_queue(lobby, "tictactoe", NULL, &id);
            } else if (event == VINOM_LOBBY_MATCH_FOUND) {
                token = strdup(vinom_lobby_token(lobby));
            } else if (event == VINOM_LOBBY_ERROR) {
                fail("lobby", vinom_lobby_error_code(lobby));
                vinom_lobby_free(lobby);
                return NULL;
            } else if (event == VINOM_LOBBY_FAILED || event == VINOM_LOBBY_CLOSED) {
                fail("lobby", event == VINOM_LOBBY_FAILED ? vinom_lobby_failure(lobby) : "closed");
                vinom_lobby_free(lobby);
                return NULL;
            }
        }
        frame();
    }
    vinom_lobby_free(lobby);
    if (!token) fail("lobby", "no match_found within 60 s");
    return token;
}

/* The value after `"key":` in `json` (compact, as vinom_message_to_json writes it). */
static const char* after(const char* json, const char* key) {
    char pattern[64];
    const char* at;
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    at = strstr(json, pattern);
    return at ? at + strlen(pattern) : NULL;
}

/* The action for a state message's view as JSON, or NULL: the first free cell
 * on this player's turn; a declined rematch once the round is over. */
static const char* move(const char* json, const char* me, int* declined) {
    static char action[64];
    const char* at;
    char mine[128];
    int cell = 0;
    if ((at = after(json, "finished")) && strncmp(at, "true", 4) == 0) return NULL;
    if ((at = after(json, "round_over")) && strncmp(at, "true", 4) == 0) {
        if (*declined) return NULL;
        *declined = 1;
        return "{\"t\":\"action\",\"a\":{\"rematch\":false}}";
    }
    snprintf(mine, sizeof mine, "\"%s\"", me);
    if (!(at = after(json, "turn")) || strncmp(at, mine, strlen(mine)) != 0) return NULL;
    if (!(at = after(json, "board")) || *at != '[') return NULL;
    for (++at; *at && *at != ']'; ++cell) {
        if (strncmp(at, "\"\"", 2) == 0) {
            snprintf(action, sizeof action, "{\"t\":\"action\",\"a\":{\"cell\":%d}}", cell);
            return action;
        }
        while (*at && *at != ',' && *at != ']') ++at; /* the marks are "X" and "O" */
        if (*at == ',') ++at;
    }
    return NULL;
}

static int play(const char* token_json, const char* me) {
    static uint8_t message[65536];
    static char json[262144];
    vinom_token* token = NULL;
    vinom_client* client = NULL;
    const char* host = NULL;
    uint16_t port = 0;
    char service[8];
    struct addrinfo hints, *found = NULL;
    int fd = -1, finished = 0, declined = 0, code = 1;
    long acted = -1;
    double deadline = monotonic() + 60.0;
    if (vinom_token_parse(token_json, strlen(token_json), &token) != VINOM_OK ||
        vinom_token_host(token, 0, &host, &port) != VINOM_OK) {
        return fail("token", "not a connect token");
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    snprintf(service, sizeof service, "%u", (unsigned)port);
    if (getaddrinfo(host, service, &hints, &found) != 0 ||
        (fd = socket(found->ai_family, SOCK_DGRAM, 0)) < 0 ||
        connect(fd, found->ai_addr, found->ai_addrlen) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
        vinom_client_new(token, (uint64_t)getpid() << 20, monotonic(), 0.0, &client) != VINOM_OK) {
        if (found) freeaddrinfo(found);
        vinom_token_free(token);
        if (fd >= 0) close(fd);
        return fail("udp", host);
    }
    freeaddrinfo(found);
    vinom_token_free(token);
    while (monotonic() < deadline) {
        uint8_t datagram[VINOM_MAX_DATAGRAM];
        size_t len = 0;
        ssize_t got;
        vinom_client_event event;
        int channel = 0;
        double now = monotonic();
        if (finished && vinom_client_state(client) == VINOM_STATE_CONNECTED &&
            vinom_client_pending(client) == 0) {
            vinom_client_close(client);
            while (vinom_client_datagram(client, datagram, sizeof datagram, &len) == VINOM_OK &&
                   len > 0)
                (void)send(fd, datagram, len, 0);
            code = 0;
            break;
        }
        while ((got = recv(fd, datagram, sizeof datagram, 0)) >= 0)
            (void)vinom_client_receive(client, datagram, (size_t)got, now);
        vinom_client_update(client, now);
        while (vinom_client_datagram(client, datagram, sizeof datagram, &len) == VINOM_OK &&
               len > 0)
            (void)send(fd, datagram, len, 0);
        while (vinom_client_poll(client, &event, &channel, message, sizeof message, &len) ==
                   VINOM_OK && event != VINOM_CLIENT_NONE) {
            size_t json_len = 0;
            const char* action;
            const char* at;
            if (event == VINOM_CLIENT_WELCOME) {
                printf("{\"event\": \"welcome\"}\n");
                continue;
            }
            if (event == VINOM_CLIENT_DISCONNECTED) {
                code = finished ? 0 : fail("disconnect", "the host closed the session");
                goto done;
            }
            if (event == VINOM_CLIENT_FAILED) {
                code = fail(vinom_client_failure(client), "the session failed");
                goto done;
            }
            if (vinom_message_to_json(message, len, json, sizeof json - 1, &json_len) != VINOM_OK)
                continue;
            json[json_len] = '\0';
            printf("{\"event\": \"message\", \"message\": %s}\n", json);
            if (strncmp(json, "{\"t\":\"phase\"", 12) == 0 && (at = after(json, "p")) &&
                (strncmp(at, "\"finished\"", 10) == 0 || strncmp(at, "\"aborted\"", 9) == 0))
                finished = 1;
            if (strncmp(json, "{\"t\":\"state\"", 12) == 0 && (at = after(json, "v")) &&
                strtol(at, NULL, 10) > acted) {
                acted = strtol(at, NULL, 10);
                if ((action = move(json, me, &declined)) != NULL &&
                    vinom_message_from_json(action, strlen(action), message, sizeof message,
                                            &len) == VINOM_OK)
                    vinom_client_send(client, message, len);
            }
        }
        fflush(stdout);
        frame();
    }
    if (code != 0 && monotonic() >= deadline) code = fail("timeout", "no result within 60 s");
done:
    fflush(stdout);
    vinom_client_free(client);
    close(fd);
    return code;
}

int main(int argc, char** argv) {
    char* token;
    const char* me;
    char player[128] = {0};
    int code;
    if (argc < 4) {
        fprintf(stderr, "usage: vinom_tictactoe HOST PORT TRUST_PEM [NAME]\n");
        return 2;
    }
    printf("{\"event\": \"library\", \"version\": \"%s\", \"header\": \"%s\"}\n",
           vinom_version_string(), VINOM_VERSION_STRING);
    token = seat_from_lobby(argv[1], (uint16_t)atoi(argv[2]), argv[3], argc > 4 ? argv[4] : "C");
    if (!token) return 1;
    printf("{\"event\": \"match_found\", \"token\": %s}\n", token);
    fflush(stdout);
    if ((me = after(token, "player_id")) != NULL) sscanf(me, " \"%127[^\"]\"", player);
    code = play(token, player);
    free(token);
    return code;
}
