/* frame_loop.c: how a Godot GDExtension node calls vinom's C ABI, in C.
 *
 * A GDExtension registers a class whose instance Godot creates, then calls
 * back from its main thread: _ready once, _process(delta) every frame,
 * _exit_tree at the end (the callbacks godot-cpp or the C API's
 * GDExtensionClassCreationInfo wires up). Godot's headers are not needed to
 * show the pattern: node_ready, node_process and node_exit_tree below are
 * those callbacks' bodies, and main() stands in for the engine's loop at
 * 60 frames a second. The node owns a non-blocking UDP socket (in Godot:
 * PacketPeerUDP) and the clock; vinom_client owns the protocol.
 *
 *   vinom_frame_loop TOKEN_FILE HOST PORT [MESSAGES]
 *
 * TOKEN_FILE holds the "token" object of the lobby's match_found. Prints
 * "welcome SESSION_ID", then "message CHANNEL JSON" for each of the room's
 * messages; after MESSAGES of them (1 by default) it closes the session and
 * exits 0. A failed session prints "failed REASON" and exits 1. */
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

typedef struct node {
    vinom_client* client;
    int fd;
    double now;          /* seconds: the sum of _process's deltas */
    int messages_left;
    uint8_t* message;    /* grown when a message does not fit */
    size_t message_cap;
    char* json;
    size_t json_cap;
} node;

/* _ready: parse the token, create the client, open the socket. */
static int node_ready(node* n, const char* token_json, size_t len, const char* host,
                      const char* port, int messages) {
    vinom_token* token = NULL;
    uint64_t first_sequence;
    struct addrinfo hints, *found = NULL;
    vinom_status s = vinom_token_parse(token_json, len, &token);
    if (s != VINOM_OK) {
        fprintf(stderr, "vinom_frame_loop: not a connect token: %s\n", vinom_status_name(s));
        return 0;
    }
    /* Random below 2^48 (a real game: the platform's CSPRNG). */
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    first_sequence = (((uint64_t)rand() << 24) ^ (uint64_t)rand()) & ((UINT64_C(1) << 48) - 1);
    s = vinom_client_new(token, first_sequence, n->now, 0.0, &n->client);
    vinom_token_free(token); /* the client keeps its own copy */
    if (s != VINOM_OK) return 0;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(host, port, &hints, &found) != 0) return 0;
    n->fd = socket(found->ai_family, SOCK_DGRAM, 0);
    if (n->fd < 0 || connect(n->fd, found->ai_addr, found->ai_addrlen) != 0 ||
        fcntl(n->fd, F_SETFL, fcntl(n->fd, F_GETFL) | O_NONBLOCK) != 0) {
        freeaddrinfo(found);
        return 0;
    }
    freeaddrinfo(found);
    n->messages_left = messages;
    n->message_cap = VINOM_MAX_DATAGRAM;
    n->message = malloc(n->message_cap);
    n->json_cap = 4 * VINOM_MAX_DATAGRAM;
    n->json = malloc(n->json_cap);
    return n->message != NULL && n->json != NULL;
}

/* _process(delta): datagrams in, update(now), datagrams out, events.
 * Returns 0 while running, 1 when done, -1 when the session failed. */
static int node_process(node* n, double delta) {
    uint8_t datagram[VINOM_MAX_DATAGRAM];
    size_t len = 0;
    ssize_t got;
    vinom_client_event event;
    int channel = 0;
    n->now += delta;
    /* Everything that arrived since the last frame; anything forged or
     * replayed gets a status and is dropped by the client. */
    while ((got = recv(n->fd, datagram, sizeof datagram, 0)) >= 0) {
        (void)vinom_client_receive(n->client, datagram, (size_t)got, n->now);
    }
    vinom_client_update(n->client, n->now);
    while (vinom_client_datagram(n->client, datagram, sizeof datagram, &len) == VINOM_OK &&
           len > 0) {
        (void)send(n->fd, datagram, len, 0);
    }
    for (;;) {
        vinom_status s = vinom_client_poll(n->client, &event, &channel, n->message,
                                           n->message_cap, &len);
        if (s == VINOM_BUFFER_TOO_SMALL) { /* a large message: grow, poll it again */
            uint8_t* larger = realloc(n->message, len);
            if (!larger) return -1;
            n->message = larger;
            n->message_cap = len;
            continue;
        }
        if (s != VINOM_OK || event == VINOM_CLIENT_NONE) return 0;
        switch (event) {
            case VINOM_CLIENT_WELCOME:
                printf("welcome %llu\n",
                       (unsigned long long)vinom_client_session_id(n->client));
                break;
            case VINOM_CLIENT_MESSAGE: {
                /* In Godot: JSON.parse_string on this text, or a msgpack
                 * decoder on the bytes. */
                size_t json_len = 0;
                if (vinom_message_to_json(n->message, len, n->json, n->json_cap, &json_len) ==
                    VINOM_OK) {
                    printf("message %d %.*s\n", channel, (int)json_len, n->json);
                }
                if (--n->messages_left == 0) {
                    vinom_client_close(n->client); /* its disconnects go out next frame */
                    return 1;
                }
                break;
            }
            case VINOM_CLIENT_DISCONNECTED:
                printf("failed disconnect\n");
                return -1;
            case VINOM_CLIENT_FAILED:
                printf("failed %s\n", vinom_client_failure(n->client));
                return -1;
            default:
                break;
        }
    }
}

/* _exit_tree: the last datagrams (the disconnects), then free everything. */
static void node_exit_tree(node* n) {
    uint8_t datagram[VINOM_MAX_DATAGRAM];
    size_t len = 0;
    while (n->client &&
           vinom_client_datagram(n->client, datagram, sizeof datagram, &len) == VINOM_OK &&
           len > 0) {
        (void)send(n->fd, datagram, len, 0);
    }
    vinom_client_free(n->client);
    if (n->fd >= 0) close(n->fd);
    free(n->message);
    free(n->json);
}

static double monotonic(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char* read_file(const char* path, size_t* len) {
    FILE* f = fopen(path, "rb");
    char* text = NULL;
    long size;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (text = malloc((size_t)size + 1)) != NULL) {
        *len = fread(text, 1, (size_t)size, f);
    }
    fclose(f);
    return text;
}

int main(int argc, char** argv) {
    node n;
    size_t len = 0;
    char* text;
    int result = 0, messages = argc > 4 ? atoi(argv[4]) : 1;
    double last;
    const struct timespec frame = {0, 16666667}; /* 60 frames a second */
    if (argc < 4 || messages < 1) {
        fprintf(stderr, "usage: vinom_frame_loop TOKEN_FILE HOST PORT [MESSAGES]\n");
        return 2;
    }
    if ((text = read_file(argv[1], &len)) == NULL) {
        fprintf(stderr, "vinom_frame_loop: cannot read %s\n", argv[1]);
        return 2;
    }
    memset(&n, 0, sizeof n);
    n.fd = -1;
    if (!node_ready(&n, text, len, argv[2], argv[3], messages)) {
        free(text);
        node_exit_tree(&n);
        return 2;
    }
    free(text);
    last = monotonic();
    while (result == 0) {
        double at;
        nanosleep(&frame, NULL);
        at = monotonic();
        result = node_process(&n, at - last);
        last = at;
        fflush(stdout);
    }
    node_exit_tree(&n);
    return result > 0 ? 0 : 1;
}
