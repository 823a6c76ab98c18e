// The lobby client (include/vinom/lobby.hpp): the framer, the frames' events,
// and a non-blocking TCP socket with OpenSSL on memory BIOs, so the socket's
// reads and writes are the client's own (MSG_NOSIGNAL: a peer gone mid-write
// is an event, not a SIGPIPE).
#include "vinom/lobby.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "log.hpp"
#include "socket.hpp"
#include "vinom/codec.hpp"  // GAME_PROTOCOL

namespace vinom {

using Json = nlohmann::json;

// -- framing ---------------------------------------------------------------

namespace {

// The lobby's socket as the socket layer takes it, and back (-1: none).
net::socket_t as_socket(std::intptr_t fd) { return static_cast<net::socket_t>(fd); }
std::intptr_t as_fd(net::socket_t s) {
    return s == net::INVALID ? -1 : static_cast<std::intptr_t>(s);
}
void close_fd(std::intptr_t& fd) {
    if (fd == -1) return;
    net::socket_t s = as_socket(fd);
    net::close(s);
    fd = -1;
}

// The deepest nesting of arrays and objects in `text` (strings skipped): the
// JSON library's writer and comparisons recurse, so a frame nested deeper
// than MAX_DEPTH is refused before it is parsed.
std::size_t nesting(std::string_view text) {
    std::size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

}  // namespace

void LobbyFramer::finish(std::deque<Item>& out) {
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_.empty()) return;  // blank lines carry nothing
    Item item;
    if (nesting(line_) > MAX_DEPTH) {
        line_.clear();
        item.code = "bad_frame";
        item.message = "nested deeper than " + std::to_string(MAX_DEPTH);
        out.push_back(std::move(item));
        return;
    }
    Json parsed = Json::parse(line_, nullptr, false);
    line_.clear();
    if (parsed.is_discarded()) {
        item.code = "bad_frame";
        item.message = "not JSON";
    } else if (!parsed.is_object()) {
        item.code = "bad_frame";
        item.message = "not a JSON object";
    } else {
        item.ok = true;
        item.frame = std::move(parsed);
    }
    out.push_back(std::move(item));
}

void LobbyFramer::feed(std::string_view data, std::deque<Item>& out) {
    while (!data.empty()) {
        std::size_t nl = data.find('\n');
        std::string_view part = data.substr(0, nl);
        if (!skipping_) {
            if (line_.size() + part.size() > MAX_FRAME) {
                Item item;
                item.code = "frame_too_large";
                item.message = "a lobby frame over " + std::to_string(MAX_FRAME) + " bytes";
                out.push_back(std::move(item));
                line_.clear();
                line_.shrink_to_fit();
                skipping_ = true;
            } else {
                line_.append(part);
            }
        }
        if (nl == std::string_view::npos) return;
        if (skipping_) {
            skipping_ = false;
        } else {
            finish(out);
        }
        data.remove_prefix(nl + 1);
    }
}

namespace {

std::string text_of(const Json& frame, const char* key) {
    auto it = frame.find(key);
    return it != frame.end() && it->is_string() ? it->get<std::string>() : std::string();
}

LobbyEvent bad_frame(LobbyEvent event, const std::string& why) {
    event.kind = LobbyEvent::Kind::error;
    event.code = "bad_frame";
    event.message = why;
    return event;
}

}  // namespace

LobbyEvent lobby_event(const LobbyFramer::Item& item) {
    LobbyEvent event;
    if (!item.ok) {
        event.kind = LobbyEvent::Kind::error;
        event.code = item.code;
        event.message = item.message;
        return event;
    }
    const Json& frame = item.frame;
    event.frame = frame.dump(-1, ' ', false, Json::error_handler_t::replace);
    auto id = frame.find("id");
    if (id != frame.end() && id->is_number_integer()) event.id = id->get<std::int64_t>();
    auto type = frame.find("type");
    if (type == frame.end() || !type->is_string()) return bad_frame(event, "no \"type\"");
    event.type = type->get<std::string>();
    if (event.type == "welcome") {
        event.player_id = text_of(frame, "player_id");
        event.secret = text_of(frame, "secret");
        if (event.player_id.empty() || event.secret.empty()) {
            return bad_frame(event, "a welcome without player_id or secret");
        }
        event.kind = LobbyEvent::Kind::welcome;
    } else if (event.type == "match_found") {
        auto token = frame.find("token");
        if (token == frame.end() || !token->is_object()) {
            return bad_frame(event, "a match_found without its token");
        }
        event.token = token->dump(-1, ' ', false, Json::error_handler_t::replace);
        event.game_id = text_of(frame, "game_id");
        event.kind = LobbyEvent::Kind::match_found;
    } else if (event.type == "error") {
        event.kind = LobbyEvent::Kind::error;
        event.code = text_of(frame, "code");
        event.message = text_of(frame, "message");
        if (event.code.empty()) event.code = "unknown";
    } else if (event.type == "queued") {
        event.kind = LobbyEvent::Kind::queued;
    } else if (event.type == "room" || event.type == "room_update") {
        auto room = frame.find("room");
        if (room == frame.end() || !room->is_object()) return bad_frame(event, "no room object");
        event.kind = LobbyEvent::Kind::room;
    } else {
        event.kind = LobbyEvent::Kind::reply;
    }
    return event;
}

namespace {

std::string line_of(Json frame) {
    return frame.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

// The auth object, if given as JSON text of an object (else left out: the
// server answers a guest, or refuses with auth_failed).
void add_auth(Json& frame, std::string_view auth) {
    if (auth.empty()) return;
    Json parsed = Json::parse(auth, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object()) frame["auth"] = std::move(parsed);
}

}  // namespace

std::string hello_frame(std::int64_t id, std::string_view name, std::string_view auth) {
    Json frame = {{"type", "hello"}, {"name", std::string(name)},
                  {"protocol", GAME_PROTOCOL}};
    add_auth(frame, auth);
    frame["id"] = id;
    return line_of(std::move(frame));
}

std::string reconnect_frame(std::int64_t id, std::string_view player_id, std::string_view secret,
                            std::string_view auth) {
    Json frame = {{"type", "reconnect"}, {"player_id", std::string(player_id)},
                  {"secret", std::string(secret)}, {"protocol", GAME_PROTOCOL}};
    add_auth(frame, auth);
    frame["id"] = id;
    return line_of(std::move(frame));
}

// -- the connection --------------------------------------------------------

namespace {

std::string tls_error(SSL* ssl) {
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (verify != X509_V_OK) {
        return std::string("certificate verify failed: ") +
               X509_verify_cert_error_string(verify);
    }
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "the TLS handshake failed";
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    return text;
}

bool loopback(const std::string& host) {
    return host == "127.0.0.1" || host == "::1" || host == "localhost";
}

}  // namespace

// What the resolver thread hands over: shared, so a Lobby freed while its
// resolver still runs leaves the thread something to write to.
struct Lobby::Resolution {
    std::mutex lock;
    std::condition_variable trusted;  // told when `trust_read` is set
    bool trust_read = false;          // the thread is done with OpenSSL's trust store
    bool done = false;
    std::vector<std::string> addresses;
    ssl_ctx_st* ctx = nullptr;  // the TLS context with its trust read (the Lobby takes it)
    std::string error;          // or why it could not be made
    ~Resolution() {
        if (ctx) SSL_CTX_free(ctx);
    }
};

namespace {

bool numeric(const std::string& host) {
    in6_addr address{};
    return inet_pton(AF_INET, host.c_str(), &address) == 1 ||
           inet_pton(AF_INET6, host.c_str(), &address) == 1;
}

// The system's resolver: every address of `host`, numeric, in its order, once each.
std::vector<std::string> system_resolve(const std::string& host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    std::vector<std::string> out;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return out;
    for (addrinfo* a = found; a; a = a->ai_next) {
        char text[NI_MAXHOST];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0,
                        NI_NUMERICHOST) == 0 &&
            std::find(out.begin(), out.end(), text) == out.end()) {
            out.emplace_back(text);
        }
    }
    freeaddrinfo(found);
    return out;
}

}  // namespace

Lobby::Lobby(const Options& options, double now)
    : host_(options.host),
      port_(options.port),
      resolve_(options.resolve),
      idle_timeout_(options.idle_timeout),
      deadline_(now + options.timeout) {
    server_name_ = options.server_name.empty()
                       ? (loopback(options.host) ? std::string("localhost") : options.host)
                       : options.server_name;
    trust_ = options.trust;
    if (options.port == 0 || options.host.empty()) {
        fail("connect: cannot resolve " + options.host + " " + std::to_string(options.port));
    }
}

bool Lobby::set_resolver(std::function<std::vector<std::string>(const std::string&)> resolve) {
    if (started_) return false;
    resolve_ = std::move(resolve);
    return true;
}

// Connecting: the addresses once resolved, then each in turn until one connects.
void Lobby::connecting(double now) {
    if (!started_) {
        // The worker thread reads the trust (the system's CAs: a file of a few
        // hundred certificates) and resolves a host name; numeric, it is taken as is.
        started_ = true;
        // Winsock wants its start-up before any socket call, the resolver's included.
        if (!net::startup()) return fail("connect: " + net::error_text(net::last_error()));
        net_started_ = true;
        resolution_ = std::make_shared<Resolution>();
        std::function<std::vector<std::string>(const std::string&)> resolve;
        if (!numeric(host_)) resolve = resolve_ ? resolve_ : system_resolve;
        try {
            worker_ = std::thread([shared = resolution_, resolve, host = host_, trust = trust_] {
                ssl_ctx_st* ctx = SSL_CTX_new(TLS_client_method());
                std::string error;
                if (!ctx) {
                    error = "tls: cannot make a TLS context";
                } else {
                    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
                    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
                    if (trust.empty()) {
                        SSL_CTX_set_default_verify_paths(ctx);
                    } else if (SSL_CTX_load_verify_locations(ctx, trust.c_str(), nullptr) != 1) {
                        error = "trust: cannot read a PEM certificate from " + trust;
                    }
                    ERR_clear_error();
                }
                {
                    std::lock_guard<std::mutex> held(shared->lock);
                    shared->trust_read = true;
                }
                shared->trusted.notify_all();
                std::vector<std::string> found;
                if (error.empty()) {
                    try {
                        found = resolve ? resolve(host) : std::vector<std::string>{host};
                    } catch (...) {
                        found.clear();
                    }
                }
                std::lock_guard<std::mutex> held(shared->lock);
                shared->ctx = ctx;
                shared->error = std::move(error);
                shared->addresses = std::move(found);
                shared->done = true;
            });
        } catch (const std::system_error&) {
            return fail("connect: cannot start the resolver thread");
        }
        if (resolve) log(LogLevel::debug, "lobby: resolving " + host_ + " on the resolver thread");
    }
    if (resolution_) {
        std::string error;
        {
            std::lock_guard<std::mutex> held(resolution_->lock);  // held for a copy at most
            if (!resolution_->done) return;
            addresses_ = std::move(resolution_->addresses);
            ctx_ = resolution_->ctx;
            resolution_->ctx = nullptr;
            error = std::move(resolution_->error);
        }
        resolution_.reset();
        if (!error.empty()) return fail(error);
        if (addresses_.empty()) {
            return fail("connect: cannot resolve " + host_ + " " + std::to_string(port_));
        }
        if (!numeric(host_)) {
            std::string all;
            for (const auto& a : addresses_) all += (all.empty() ? "" : " ") + a;
            log(LogLevel::info, "lobby: " + host_ + " resolves to " + all);
        }
    }
    if (fd_ == -1) return connect_next(now);
    net::poll_t p{};
    p.fd = as_socket(fd_);
    p.events = POLLOUT;
    if (net::poll(&p, 1, 0) > 0) {
        int err = net::pending_error(as_socket(fd_));
        if (err == 0) return start_tls();
        connect_error_ = net::error_text(err);
    } else if (now >= attempt_deadline_ && next_address_ < addresses_.size()) {
        connect_error_ = "no answer";
    } else {
        return;
    }
    log(LogLevel::info, "lobby: connect " + address_ + " port " + std::to_string(port_) + ": " +
                            connect_error_ +
                            (next_address_ < addresses_.size() ? ", trying the next address" : ""));
    close_fd(fd_);
    connect_next(now);
}

// A non-blocking connect to the next address that takes one; failed when none is left.
void Lobby::connect_next(double now) {
    while (next_address_ < addresses_.size()) {
        address_ = addresses_[next_address_++];
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;  // never a lookup
        addrinfo* found = nullptr;
        std::string port = std::to_string(port_);
        if (getaddrinfo(address_.c_str(), port.c_str(), &hints, &found) != 0 || !found) {
            connect_error_ = "not a numeric address";
        } else {
            fd_ = as_fd(net::open_stream(found->ai_family));  // non-blocking, no Nagle
            int e = 0;
            if (fd_ == -1) {
                e = net::last_error();
            } else if (net::connect(as_socket(fd_), found->ai_addr, found->ai_addrlen) != 0) {
                e = net::last_error();
                if (net::in_progress(e)) e = 0;
            }
            freeaddrinfo(found);
            if (e == 0) {
                // Each attempt gets its share of the time left.
                std::size_t left = addresses_.size() - next_address_ + 1;
                attempt_deadline_ = now + (deadline_ - now) / static_cast<double>(left);
                return;
            }
            connect_error_ = net::error_text(e);
            close_fd(fd_);
        }
        log(LogLevel::info, "lobby: connect " + address_ + " port " + port + ": " +
                                connect_error_ +
                                (next_address_ < addresses_.size() ? ", trying the next address"
                                                                   : ""));
    }
    fail("connect: " + connect_error_);
}

Lobby::~Lobby() {
    // The worker is never left inside OpenSSL: a program that frees its lobby and
    // returns would tear OpenSSL down under it (a crash), or end while it holds
    // OpenSSL's per-thread state (a leak). So the trust store's read is waited for,
    // and a worker that has handed over is joined (only its exit is left); one whose
    // resolver still hangs is left to finish on its own: that is never waited for.
    if (worker_.joinable()) {
        bool done = !resolution_;
        if (resolution_) {
            std::unique_lock<std::mutex> held(resolution_->lock);
            resolution_->trusted.wait(held, [this] { return resolution_->trust_read; });
            done = resolution_->done;
        }
        if (done) {
            worker_.join();
        } else {
            worker_.detach();
        }
    }
    if (ssl_) SSL_free(ssl_);  // frees both BIOs
    if (ctx_) SSL_CTX_free(ctx_);
    close_fd(fd_);
    if (net_started_) net::cleanup();
}

void Lobby::push(LobbyEvent event) { events_.push_back(std::move(event)); }

void Lobby::fail(const std::string& reason) {
    if (state_ == State::failed || state_ == State::closed) return;
    state_ = State::failed;
    failure_ = reason;
    log(LogLevel::warning, "lobby: failed: " + reason);
    LobbyEvent event;
    event.kind = LobbyEvent::Kind::failed;
    event.reason = reason;
    push(std::move(event));
    close_fd(fd_);
}

void Lobby::finish_closed(const std::string& reason) {
    if (state_ == State::failed || state_ == State::closed) return;
    state_ = State::closed;
    LobbyEvent event;
    event.kind = LobbyEvent::Kind::closed;
    event.reason = reason;
    push(std::move(event));
    close_fd(fd_);
}

void Lobby::start_tls() {
    ssl_ = SSL_new(ctx_);
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    if (!ssl_ || !rbio_ || !wbio_) {
        if (rbio_ && !ssl_) BIO_free(rbio_);
        if (wbio_ && !ssl_) BIO_free(wbio_);
        return fail("tls: out of memory");
    }
    BIO_set_mem_eof_return(rbio_, -1);  // empty: "retry", until the peer's EOF
    SSL_set_bio(ssl_, rbio_, wbio_);
    in6_addr address{};
    if (inet_pton(AF_INET, server_name_.c_str(), &address) == 1 ||
        inet_pton(AF_INET6, server_name_.c_str(), &address) == 1) {
        // An address is checked against the certificate's IP names (and sent no SNI).
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), server_name_.c_str());
    } else {
        SSL_set_tlsext_host_name(ssl_, server_name_.c_str());
        SSL_set1_host(ssl_, server_name_.c_str());
    }
    SSL_set_connect_state(ssl_);
    state_ = State::handshaking;
    last_heard_ = now_;  // connected: the idle clock starts
}

void Lobby::read_socket() {
    char buffer[16384];
    // At most MAX_FRAME TLS bytes wait in the BIO: the socket's buffer holds the rest.
    while (fd_ != -1 && !peer_eof_ && BIO_ctrl_pending(rbio_) < LobbyFramer::MAX_FRAME) {
        long n = net::receive(as_socket(fd_), buffer, sizeof buffer);
        int e = n < 0 ? net::last_error() : 0;
        if (n > 0) {
            last_heard_ = now_;
            BIO_write(rbio_, buffer, static_cast<int>(n));
        } else if (n == 0) {
            peer_eof_ = true;
            BIO_set_mem_eof_return(rbio_, 0);
        } else if (net::interrupted(e)) {
            continue;
        } else if (net::would_block(e)) {
            return;
        } else {
            return fail("connection: " + net::error_text(e));
        }
    }
}

void Lobby::flush_socket() {
    if (!wbio_) return;
    char buffer[16384];
    while (wire_.size() < MAX_OUTGOING && BIO_ctrl_pending(wbio_) > 0) {
        int n = BIO_read(wbio_, buffer, sizeof buffer);
        if (n <= 0) break;
        wire_.append(buffer, static_cast<std::size_t>(n));
    }
    while (fd_ != -1 && !wire_.empty()) {
        long n = net::send(as_socket(fd_), wire_.data(), wire_.size());
        int e = n < 0 ? net::last_error() : 0;
        if (n > 0) {
            wire_.erase(0, static_cast<std::size_t>(n));
        } else if (n < 0 && net::interrupted(e)) {
            continue;
        } else if (n < 0 && net::would_block(e)) {
            return;
        } else {
            return fail("connection: " + net::error_text(e));
        }
    }
}

void Lobby::handshake() {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r == 1) {
        state_ = State::open;
        LobbyEvent event;
        event.kind = LobbyEvent::Kind::connected;
        push(std::move(event));
        return;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (peer_eof_ && BIO_ctrl_pending(rbio_) == 0) {
            fail("tls: the lobby closed the connection during the handshake");
        }
        return;
    }
    std::string why = tls_error(ssl_);
    flush_socket();  // the alert that says why, to the server
    fail("tls: " + why);
}

void Lobby::read_frames() {
    char buffer[16384];
    std::deque<LobbyFramer::Item> items;
    while (state_ == State::open && events_.size() < MAX_EVENTS) {
        ERR_clear_error();
        int n = SSL_read(ssl_, buffer, sizeof buffer);
        if (n <= 0) {
            int e = SSL_get_error(ssl_, n);
            bool drained = peer_eof_ && BIO_ctrl_pending(rbio_) == 0;
            if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && !drained) return;
            ERR_clear_error();
            return finish_closed(e == SSL_ERROR_ZERO_RETURN ? "closed" : "connection lost");
        }
        framer_.feed(std::string_view(buffer, static_cast<std::size_t>(n)), items);
        for (const auto& item : items) {
            LobbyEvent event = lobby_event(item);
            if (!item.ok) {
                log(LogLevel::warning, "lobby: dropped a frame: " + item.code + ": " + item.message);
            }
            // The lobby checks that a waiting player is alive: any frame answers.
            if (event.kind == LobbyEvent::Kind::reply && event.type == "ping" &&
                item.frame.find("id") == item.frame.end()) {
                enqueue("{\"type\":\"ping\"}\n");
                continue;
            }
            push(std::move(event));
        }
        items.clear();
    }
}

void Lobby::write_frames() {
    while (state_ == State::open && !outgoing_.empty()) {
        ERR_clear_error();
        int n = SSL_write(ssl_, outgoing_.data(), static_cast<int>(outgoing_.size()));
        if (n <= 0) {
            int e = SSL_get_error(ssl_, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            return fail("tls: " + tls_error(nullptr));
        }
        outgoing_.erase(0, static_cast<std::size_t>(n));
    }
}

void Lobby::update(double now) {
    if (state_ == State::failed || state_ == State::closed) return;
    now_ = now;
    if (state_ == State::connecting) connecting(now);
    if (state_ == State::handshaking || state_ == State::open) {
        read_socket();
        if (state_ == State::handshaking) handshake();
        if (state_ == State::open) read_frames();
        if (state_ == State::open) write_frames();
        flush_socket();
    }
    if ((state_ == State::connecting || state_ == State::handshaking) && now >= deadline_) {
        fail("timeout: not connected to the lobby within the timeout");
    }
    if (state_ == State::open && idle_timeout_ > 0 && now - last_heard_ >= idle_timeout_) {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%g", idle_timeout_);
        fail(std::string("idle: no byte from the lobby for ") + seconds + " s");
    }
}

bool Lobby::next_event(LobbyEvent& out) {
    if (events_.empty()) return false;
    out = std::move(events_.front());
    events_.pop_front();
    return true;
}

bool Lobby::enqueue(std::string line) {
    if (state_ == State::failed || state_ == State::closed) return false;
    if (outgoing_.size() + line.size() > MAX_OUTGOING) return false;
    outgoing_ += line;
    return true;
}

std::int64_t Lobby::request(const Json& frame) {
    if (!frame.is_object()) return 0;
    Json copy = frame;
    std::int64_t id = next_id_;
    copy["id"] = id;
    if (!enqueue(line_of(std::move(copy)))) return 0;
    return next_id_++;
}

std::int64_t Lobby::hello(std::string_view name, std::string_view auth) {
    if (!enqueue(hello_frame(next_id_, name, auth))) return 0;
    return next_id_++;
}

std::int64_t Lobby::queue(std::string_view game, std::string_view queue) {
    Json frame = {{"type", "queue"}, {"game", std::string(game)}};
    if (!queue.empty() && queue != "normal") frame["queue"] = std::string(queue);
    return request(frame);
}

std::int64_t Lobby::cancel() { return request(Json{{"type", "cancel"}}); }

std::int64_t Lobby::create_room(std::string_view game, bool is_private) {
    return request(Json{{"type", "create_room"}, {"game", std::string(game)},
                        {"private", is_private}});
}

std::int64_t Lobby::join_room(std::string_view code) {
    return request(Json{{"type", "join_room"}, {"code", std::string(code)}});
}

std::int64_t Lobby::add_bot() { return request(Json{{"type", "add_bot"}}); }

std::int64_t Lobby::reconnect(std::string_view player_id, std::string_view secret,
                              std::string_view auth) {
    if (!enqueue(reconnect_frame(next_id_, player_id, secret, auth))) return 0;
    return next_id_++;
}

void Lobby::close() {
    if (state_ == State::open && ssl_) {
        write_frames();
        SSL_shutdown(ssl_);
        flush_socket();
    }
    finish_closed("closed by the client");
}

}  // namespace vinom
