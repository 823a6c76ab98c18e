// The lobby client's framing and frames (include/vinom/lobby.hpp): frames split
// anywhere, blank lines, CRLF, malformed and oversized frames as error events
// (and the next frame read), each frame's event, the frames the client sends;
// and the connection's failures against real local sockets: an unreadable
// trust file, a refused port, a peer that is not TLS, one that hangs up.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "vinom.h"
#include "vinom/lobby.hpp"

using vinom::LobbyEvent;
using vinom::LobbyFramer;

namespace {

using Json = nlohmann::json;

std::vector<LobbyEvent> events_of(LobbyFramer& framer, const std::string& bytes) {
    std::deque<LobbyFramer::Item> items;
    framer.feed(bytes, items);
    std::vector<LobbyEvent> out;
    for (const auto& item : items) out.push_back(vinom::lobby_event(item));
    return out;
}

std::vector<LobbyEvent> events_of(const std::string& bytes) {
    LobbyFramer framer;
    return events_of(framer, bytes);
}

}  // namespace

TEST(LobbyFrames, SplitAnywhereBlankLinesAndCrlf) {
    const std::string wire =
        "{\"type\":\"welcome\",\"id\":1,\"player_id\":\"p-1\",\"name\":\"Ann\",\"secret\":\"s\"}\r\n"
        "\n"
        "{\"type\":\"queued\",\"id\":2,\"game\":\"tictactoe\",\"position\":1,\"status\":\"searching\"}\n";
    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
        LobbyFramer framer;
        auto first = events_of(framer, wire.substr(0, cut));
        auto second = events_of(framer, wire.substr(cut));
        first.insert(first.end(), second.begin(), second.end());
        ASSERT_EQ(first.size(), 2u) << cut;
        EXPECT_EQ(first[0].kind, LobbyEvent::Kind::welcome);
        EXPECT_EQ(first[0].id, 1);
        EXPECT_EQ(first[0].player_id, "p-1");
        EXPECT_EQ(first[0].secret, "s");
        EXPECT_EQ(first[1].kind, LobbyEvent::Kind::queued);
        EXPECT_EQ(first[1].id, 2);
        EXPECT_EQ(framer.buffered(), 0u);
    }
}

TEST(LobbyFrames, MalformedFramesAreErrorEventsAndTheNextIsRead) {
    const char* bad[] = {"not json", "[1,2]", "\"text\"", "{\"type\":", "{\"no_type\":1}",
                         "{\"type\":7}", "{\"type\":\"welcome\",\"player_id\":1}",
                         "{\"type\":\"match_found\",\"token\":\"x\"}",
                         "{\"type\":\"room\",\"room\":[]}", "{\"type\":\"x\",\"a\":\"\xff\xfe\"}"};
    for (const char* frame : bad) {
        auto events = events_of(std::string(frame) + "\n{\"type\":\"pong\",\"id\":4}\n");
        ASSERT_EQ(events.size(), 2u) << frame;
        EXPECT_EQ(events[0].kind, LobbyEvent::Kind::error) << frame;
        EXPECT_EQ(events[0].code, "bad_frame") << frame;
        EXPECT_FALSE(events[0].message.empty()) << frame;
        EXPECT_EQ(events[1].kind, LobbyEvent::Kind::reply) << frame;
        EXPECT_EQ(events[1].type, "pong");
        EXPECT_EQ(events[1].id, 4);
    }
}

TEST(LobbyFrames, AnOversizedFrameIsOneErrorAndItsBytesAreNotKept) {
    LobbyFramer framer;
    // The longest frame is read whole.
    std::string longest = "{\"type\":\"pong\",\"pad\":\"";
    longest += std::string(LobbyFramer::MAX_FRAME - longest.size() - 2, 'a') + "\"}";
    ASSERT_EQ(longest.size(), LobbyFramer::MAX_FRAME);
    auto events = events_of(framer, longest + "\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, LobbyEvent::Kind::reply);
    // One byte more, fed in pieces with no newline: one error, nothing held.
    std::vector<LobbyEvent> all;
    const std::string piece(4096, 'b');
    for (int i = 0; i < 64; ++i) {
        auto got = events_of(framer, piece);
        all.insert(all.end(), got.begin(), got.end());
        EXPECT_LE(framer.buffered(), LobbyFramer::MAX_FRAME);
    }
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].kind, LobbyEvent::Kind::error);
    EXPECT_EQ(all[0].code, "frame_too_large");
    EXPECT_EQ(framer.buffered(), 0u);
    // The rest of that line is skipped; the next frame is read.
    events = events_of(framer, "tail}\n{\"type\":\"cancelled\",\"id\":3}\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].type, "cancelled");
    EXPECT_EQ(events[0].id, 3);
}

TEST(LobbyFrames, DeepNestingIsAnEventNotACrash) {
    std::string deep(LobbyFramer::MAX_FRAME / 2, '[');
    auto events = events_of(deep + "\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].code, "bad_frame");
    auto nested = [](std::size_t depth) {  // an object around depth - 1 arrays
        return "{\"type\":\"pong\",\"x\":\"[{\\\"]\"," "\"y\":" + std::string(depth - 1, '[') +
               std::string(depth - 1, ']') + "}\n";
    };
    events = events_of(nested(20000));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].code, "bad_frame");
    EXPECT_EQ(events[0].message, "nested deeper than 32");
    events = events_of(nested(LobbyFramer::MAX_DEPTH));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, LobbyEvent::Kind::reply);  // brackets in strings do not count
}

TEST(LobbyFrames, EachFramesEvent) {
    auto events = events_of(
        "{\"type\":\"match_found\",\"game\":\"tictactoe\",\"game_id\":\"m-1\",\"host\":\"127.0.0.1\","
        "\"port\":7380,\"token\":{\"version\":3,\"player_id\":\"p-1\"},\"expires_at\":1.5}\n"
        "{\"type\":\"error\",\"code\":\"unknown_game\",\"message\":\"no game called \\\"chess\\\"\","
        "\"id\":2}\n"
        "{\"type\":\"error\",\"id\":\"x\"}\n"
        "{\"type\":\"room_update\",\"room\":{\"taken\":2}}\n"
        "{\"type\":\"ping\"}\n");
    ASSERT_EQ(events.size(), 5u);
    EXPECT_EQ(events[0].kind, LobbyEvent::Kind::match_found);
    EXPECT_EQ(events[0].game_id, "m-1");
    EXPECT_EQ(Json::parse(events[0].token), (Json{{"version", 3}, {"player_id", "p-1"}}));
    EXPECT_EQ(Json::parse(events[0].frame).at("port"), 7380);
    EXPECT_EQ(events[1].kind, LobbyEvent::Kind::error);
    EXPECT_EQ(events[1].code, "unknown_game");
    EXPECT_EQ(events[1].message, "no game called \"chess\"");
    EXPECT_EQ(events[1].id, 2);
    EXPECT_EQ(events[2].code, "unknown");  // an error without a code, an id not a number
    EXPECT_EQ(events[2].id, 0);
    EXPECT_EQ(events[3].kind, LobbyEvent::Kind::room);
    EXPECT_EQ(events[4].kind, LobbyEvent::Kind::reply);
    EXPECT_EQ(events[4].type, "ping");
}

TEST(LobbyFrames, TheFramesTheClientSends) {
    std::string hello = vinom::hello_frame(1, "Ann", "");
    ASSERT_EQ(hello.back(), '\n');
    EXPECT_EQ(Json::parse(hello),
              (Json{{"type", "hello"}, {"name", "Ann"}, {"protocol", 4}, {"id", 1}}));
    hello = vinom::hello_frame(2, "Ann", "{\"kind\":\"jwt\",\"token\":\"t\"}");
    EXPECT_EQ(Json::parse(hello).at("auth"), (Json{{"kind", "jwt"}, {"token", "t"}}));
    std::string again = vinom::reconnect_frame(9, "p-1", "Xq2", "");
    EXPECT_EQ(Json::parse(again), (Json{{"type", "reconnect"}, {"player_id", "p-1"},
                                        {"secret", "Xq2"}, {"protocol", 4}, {"id", 9}}));
    // A name with a newline or a quote stays one line of JSON.
    hello = vinom::hello_frame(3, "a\n\"b", "");
    EXPECT_EQ(hello.find('\n'), hello.size() - 1);
}

namespace {

// A listening TCP socket on 127.0.0.1 and an ephemeral port.
struct Listener {
    int fd = -1;
    std::uint16_t port = 0;
    Listener() {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd, 4) != 0 ||
            getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            ADD_FAILURE() << "cannot listen";
        }
        port = ntohs(a.sin_port);
    }
    ~Listener() { ::close(fd); }
};

// The lobby's events until it fails or closes (the clock turns 10 ms a step).
std::vector<LobbyEvent> run(vinom::Lobby& lobby, const std::function<void(int)>& step = {}) {
    std::vector<LobbyEvent> out;
    for (int i = 0; i < 500; ++i) {
        if (step) step(i);
        lobby.update(i * 0.01);
        LobbyEvent e;
        while (lobby.next_event(e)) out.push_back(e);
        if (lobby.state() == vinom::Lobby::State::failed ||
            lobby.state() == vinom::Lobby::State::closed) {
            break;
        }
        usleep(2000);
    }
    return out;
}

}  // namespace

TEST(LobbyConnection, AnUnreadableTrustFileFailsBeforeAnyConnect) {
    // The trust is read on the lobby's worker thread: the first updates fail it.
    vinom::Lobby::Options options;
    options.host = "127.0.0.1";
    options.port = 1;
    options.trust = "/nonexistent/lobby.pem";
    vinom::Lobby lobby(options, 0.0);
    auto events = run(lobby);
    EXPECT_EQ(lobby.state(), vinom::Lobby::State::failed);
    EXPECT_EQ(lobby.failure(), "trust: cannot read a PEM certificate from /nonexistent/lobby.pem");
    EXPECT_EQ(lobby.hello("Ann"), 0);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, LobbyEvent::Kind::failed);
}

TEST(LobbyConnection, APeerThatIsNotTlsOrHangsUpFailsTheHandshake) {
    for (bool speak : {true, false}) {
        Listener server;
        fcntl(server.fd, F_SETFL, O_NONBLOCK);  // the lobby connects from its first updates
        vinom::Lobby::Options options;
        options.host = "127.0.0.1";
        options.port = server.port;
        vinom::Lobby lobby(options, 0.0);
        EXPECT_GT(lobby.hello("Ann"), 0);  // waits for the connection
        int peer = -1;
        auto events = run(lobby, [&](int) {
            if (peer >= 0) return;
            peer = accept(server.fd, nullptr, nullptr);
            if (peer < 0) return;
            if (speak) {
                const char reply[] = "HTTP/1.0 400 Bad Request\r\n\r\n";
                (void)!write(peer, reply, sizeof reply - 1);
            }
            shutdown(peer, SHUT_RDWR);
        });
        if (peer >= 0) ::close(peer);
        ASSERT_FALSE(events.empty());
        EXPECT_EQ(events.back().kind, LobbyEvent::Kind::failed) << speak;
        EXPECT_EQ(lobby.failure().rfind("tls: ", 0), 0u) << lobby.failure();
    }
}

TEST(LobbyConnection, ARefusedPortAndATimeoutThroughTheCAbi) {
    int fd;
    std::uint16_t port;
    {
        Listener closed;  // a port nobody listens on once it is closed
        port = closed.port;
        fd = closed.fd;
    }
    (void)fd;
    vinom_lobby* lobby = nullptr;
    // A timeout no loop below reaches: the trust and the address are read on a worker
    // thread, which a loaded machine may start late; only the refusal ends this lobby.
    ASSERT_EQ(vinom_lobby_new("127.0.0.1", port, nullptr, nullptr, 0.0, 1000.0, &lobby),
              VINOM_OK);
    vinom_lobby_event event = VINOM_LOBBY_NONE;
    char frame[64];
    size_t len = 0;
    for (int i = 0; i < 5000 && event != VINOM_LOBBY_FAILED; ++i) {
        ASSERT_EQ(vinom_lobby_update(lobby, i * 0.01), VINOM_OK);
        ASSERT_EQ(vinom_lobby_poll(lobby, &event, nullptr, frame, sizeof frame, &len), VINOM_OK);
        usleep(2000);
    }
    EXPECT_EQ(event, VINOM_LOBBY_FAILED);
    EXPECT_EQ(vinom_lobby_state(lobby), VINOM_LOBBY_STATE_FAILED);
    EXPECT_EQ(std::string(vinom_lobby_failure(lobby)), "connect: Connection refused");
    EXPECT_EQ(vinom_lobby_queue(lobby, "tictactoe", nullptr, nullptr), VINOM_UNEXPECTED);
    vinom_lobby_free(lobby);

    // A listener that never accepts: connected by the kernel, no TLS answer.
    Listener silent;
    ASSERT_EQ(vinom_lobby_new("127.0.0.1", silent.port, nullptr, nullptr, 0.0, 0.5, &lobby),
              VINOM_OK);
    ASSERT_EQ(vinom_lobby_update(lobby, 0.1), VINOM_OK);
    ASSERT_EQ(vinom_lobby_update(lobby, 0.6), VINOM_OK);
    EXPECT_EQ(vinom_lobby_state(lobby), VINOM_LOBBY_STATE_FAILED);
    EXPECT_EQ(std::string(vinom_lobby_failure(lobby)),
              "timeout: not connected to the lobby within the timeout");
    vinom_lobby_free(lobby);
}
