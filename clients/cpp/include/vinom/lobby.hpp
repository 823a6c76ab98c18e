// The lobby client of the native core (docs/lobby.md): newline-delimited JSON
// frames over TLS, in the engine's shape of vinom::Client. Non-blocking and
// never blocking: the game calls update(now) every frame, which connects (a
// host name resolved on a thread of its own, each address tried in turn), runs the
// TLS handshake, reads and writes what the socket allows, and turns each frame
// the lobby sent into an event it reads with next_event. Requests (hello,
// queue, cancel, rooms, reconnect) may be made at once: they wait in a bounded
// buffer until the connection is up. Every buffer is bounded; nothing the
// server sends crashes it: a malformed or oversized frame is an error event.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

// OpenSSL's types, declared only: the header needs none of OpenSSL's.
struct ssl_st;
struct ssl_ctx_st;
struct bio_st;

namespace vinom {

struct LobbyEvent {
    enum class Kind {
        none,
        connected,    // the TLS handshake verified the lobby's certificate
        welcome,      // hello's answer: player_id, secret
        queued,       // a `queued` frame
        room,         // a `room` reply or a `room_update`
        match_found,  // token: the connect token's JSON (vinom::parse_public_token)
        reply,        // any other frame (cancelled, pong, ...)
        error,        // an `error` frame, or a frame the client cannot read: code, message
        closed,       // the lobby closed the connection (it does after match_found)
        failed        // connect, TLS, timeout or idle: reason (also Lobby::failure())
    };
    Kind kind = Kind::none;
    std::int64_t id = 0;    // the request's id the frame answers, 0 for none
    std::string type;       // the frame's "type"
    std::string frame;      // the frame as JSON text ("" for connected, closed, failed)
    std::string code;       // error: its code ("bad_frame", "frame_too_large" from the client)
    std::string message;    // error: its message
    std::string player_id;  // welcome
    std::string secret;     // welcome
    std::string game_id;    // match_found
    std::string token;      // match_found: the "token" object as JSON text
    std::string reason;     // failed, closed
};

// The sans-I/O part: bytes in, frames (JSON objects) or errors out. A line is
// at most MAX_FRAME bytes; a longer one gives one `frame_too_large` and its
// bytes are skipped up to the next newline, so a client never holds more;
// one nested deeper than MAX_DEPTH is a `bad_frame`.
class LobbyFramer {
public:
    static constexpr std::size_t MAX_FRAME = 64 * 1024;
    // Arrays and objects within each other; a lobby frame needs a few.
    static constexpr std::size_t MAX_DEPTH = 32;

    struct Item {
        bool ok = false;
        nlohmann::json frame;  // ok: a JSON object
        std::string code;      // not ok: "frame_too_large" or "bad_frame"
        std::string message;
    };

    // Appends what `data` completes to `out`.
    void feed(std::string_view data, std::deque<Item>& out);
    std::size_t buffered() const { return line_.size(); }

private:
    void finish(std::deque<Item>& out);

    std::string line_;
    bool skipping_ = false;
};

// One frame the lobby sent, as the event it makes (the framer's errors too).
LobbyEvent lobby_event(const LobbyFramer::Item& item);

// The frames a client sends, one JSON line each, with its `id` (docs/lobby.md).
// `auth`: the credentials object's JSON text, or empty for none.
std::string hello_frame(std::int64_t id, std::string_view name, std::string_view auth);
std::string reconnect_frame(std::int64_t id, std::string_view player_id, std::string_view secret,
                            std::string_view auth);

class Lobby {
public:
    enum class State { connecting, handshaking, open, closed, failed };

    struct Options {
        std::string host;         // an address, or a name (resolved on a thread of its
                                  // own by the first update)
        std::uint16_t port = 0;
        std::string trust;        // PEM file of the CA or the lobby's own certificate;
                                  // empty: the system's CAs
        std::string server_name;  // the name its certificate must carry (empty:
                                  // "localhost" for a loopback address, else host)
        double timeout = 10.0;    // seconds to be connected and verified
        // Seconds an open connection may go without a byte from the lobby
        // (<= 0: forever): it closes a silent one after 60 s and pings a
        // queued one every 5 s (docs/lobby.md).
        double idle_timeout = 70.0;
        // A name's numeric addresses, called on the resolver thread (it may
        // block, and outlive the Lobby); empty: getaddrinfo.
        std::function<std::vector<std::string>(const std::string& host)> resolve;
    };

    // Bounds: bytes waiting to be sent, and events not read yet (past it the
    // client stops reading the socket until the game reads them).
    static constexpr std::size_t MAX_OUTGOING = 64 * 1024;
    static constexpr std::size_t MAX_EVENTS = 256;

    // Port 0 or no host fails at once (state() failed, a failed event with
    // the reason); the first update starts a thread that reads the trust (a
    // bad file: failed) and resolves a name, then connects.
    Lobby(const Options& options, double now);
    ~Lobby();
    Lobby(const Lobby&) = delete;
    Lobby& operator=(const Lobby&) = delete;

    void update(double now);
    // Before the first update only (false after).
    bool set_resolver(std::function<std::vector<std::string>(const std::string&)> resolve);
    void set_idle_timeout(double seconds) { idle_timeout_ = seconds; }
    bool next_event(LobbyEvent& out);
    const LobbyEvent* peek_event() const { return events_.empty() ? nullptr : &events_.front(); }

    // Each returns the request's id, or 0 when it cannot be sent (closed,
    // failed, or MAX_OUTGOING bytes waiting). The match_found that ends a
    // queue, a full room or a reconnect is an event of its own.
    std::int64_t hello(std::string_view name, std::string_view auth = {});
    std::int64_t queue(std::string_view game, std::string_view queue = "normal");
    std::int64_t cancel();
    std::int64_t create_room(std::string_view game, bool is_private = false);
    std::int64_t join_room(std::string_view code);
    std::int64_t add_bot();
    std::int64_t reconnect(std::string_view player_id, std::string_view secret,
                           std::string_view auth = {});
    // Any frame (a JSON object's text) with a fresh id.
    std::int64_t request(const nlohmann::json& frame);

    void close();
    State state() const { return state_; }
    const std::string& failure() const { return failure_; }

private:
    void fail(const std::string& reason);
    void finish_closed(const std::string& reason);
    void push(LobbyEvent event);
    bool enqueue(std::string line);
    void start_tls();
    void read_socket();
    void flush_socket();
    void handshake();
    void read_frames();
    void write_frames();
    void connecting(double now);
    void connect_next(double now);

    struct Resolution;  // what the resolver thread hands over

    State state_ = State::connecting;
    std::string host_;
    std::uint16_t port_ = 0;
    std::string trust_;
    std::function<std::vector<std::string>(const std::string&)> resolve_;
    bool started_ = false;
    std::shared_ptr<Resolution> resolution_;  // shared with the resolver thread
    std::thread worker_;  // joined once it has handed over, left to finish otherwise
    std::vector<std::string> addresses_;      // numeric, tried in turn
    std::size_t next_address_ = 0;
    std::string address_;                      // the one being tried
    std::string connect_error_;                // the last address's failure
    double attempt_deadline_ = 0;
    double idle_timeout_;
    double now_ = 0;
    double last_heard_ = 0;
    std::string failure_;
    // The TCP socket (socket.hpp's socket_t: an int, or a Winsock SOCKET), -1 for none.
    std::intptr_t fd_ = -1;
    bool net_started_ = false;  // net::startup() called (Winsock's WSAStartup)
    double deadline_;
    bool peer_eof_ = false;
    ssl_ctx_st* ctx_ = nullptr;
    ssl_st* ssl_ = nullptr;
    bio_st* rbio_ = nullptr;  // network bytes in, owned by ssl_
    bio_st* wbio_ = nullptr;  // TLS bytes out, owned by ssl_
    std::string server_name_;
    std::string outgoing_;  // frames not yet given to TLS
    std::string wire_;      // TLS bytes the socket did not take yet
    std::int64_t next_id_ = 1;
    LobbyFramer framer_;
    std::deque<LobbyEvent> events_;
};

}  // namespace vinom
