// vinom_load: many UDP game sessions from one process and one thread, the
// native load client of `python -m benchmarks match --client native`.
//
//   vinom_load [TOKENS] [--play full-room|tictactoe] [--session-seconds S]
//              [--attempt-timeout S]
//
// TOKENS (a file, or "-", the default: stdin) holds connect tokens as JSON
// lines, each the "token" object of a lobby's match_found (docs/protocol.md
// 4.3); stdin is read as the lines arrive, so the lobby side can hand tokens
// over while earlier sessions play. Each token starts a session at once, on a
// non-blocking UDP socket of its own connected to the token's first host; all
// sockets wait in one epoll set. Each session's vinom::Client (the core's
// sessions, reliability layer and timers) is updated after every datagram it
// receives and by a sweep: at 10 Hz while it shakes hands or has reliable
// messages unacknowledged (the resend interval), at 2 Hz when idle (its
// keepalive is due every third of the session timeout).
//
// --play full-room (the default) plays as the match benchmark's Python bots
// do: the session ends well once its room is full (its first state, or the
// phase `countdown` or `playing`), with `leave` on the reliable channel and
// the redundant disconnects. --play tictactoe plays the first empty cell at its
// turn (declining rematches) until the phase `finished`, then closes.
//
// Output, one JSON line each on stdout: a "session" line per session as it
// ends (`n`, its token's line from 0; `player_id`, `match_id`; `result`
// "ok" or "failed" with a `reason`: timeout, denied, disconnect, ended (the
// match ended before the room was full), too_slow (not done within
// --session-seconds, 60 by default); `welcome_ms` and `ms` from its token's
// arrival; `moves`), then, once the input has ended and every session has,
// one "summary" line: `sessions`, `ok`, `failed`, `wall_s`, `cpu_user_s`,
// `cpu_system_s` and `cpu_us_per_session` (getrusage of this process), and
// `most_open` (the most sessions open at once). A token that does not parse is
// a failed session (reason bad_token). A bad command line exits 2; otherwise
// the exit code is 0 when every session ended well, 1 when any failed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vinom/client.hpp"
#include "vinom/messages.hpp"

namespace {

using vinom::Bytes;
using vinom::Error;
using vinom::Value;

constexpr double SWEEP = vinom::Client::HANDSHAKE_INTERVAL;
constexpr double IDLE = 0.5;
constexpr std::uint32_t INPUT = 0xffffffffu;  // the epoll tag of the token input

double monotonic() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "vinom_load: " << why
              << "\nusage: vinom_load [TOKENS] [--play full-room|tictactoe] "
                 "[--session-seconds S] [--attempt-timeout S]"
              << std::endl;
    std::exit(2);
}

struct Options {
    std::string tokens = "-";
    bool tictactoe = false;
    double session_seconds = 60.0, attempt_timeout = 0.0;
};

// A member of a message, or the fallback when it is missing or of another type
// (null, say): what a server sends never throws here.
std::string text(const Value& v, const char* key) {
    auto at = v.find(key);
    return at != v.end() && at->is_string() ? at->get<std::string>() : std::string();
}
bool flag(const Value& v, const char* key) {
    auto at = v.find(key);
    return at != v.end() && at->is_boolean() && at->get<bool>();
}
std::int64_t number(const Value& v, const char* key) {
    auto at = v.find(key);
    return at != v.end() && at->is_number_integer() ? at->get<std::int64_t>() : -1;
}
Value array(const Value& v, const char* key) {
    auto at = v.find(key);
    return at != v.end() && at->is_array() ? *at : Value::array();
}

// What --play tictactoe sends for a state's view, if anything: the first empty
// cell at its turn, no rematch.
std::optional<Value> tictactoe_move(const Value& view, const std::string& me) {
    if (!view.is_object() || flag(view, "finished")) return std::nullopt;
    if (flag(view, "round_over")) {
        for (const Value& p : array(view, "players")) {
            if (p.is_object() && text(p, "id") == me && !flag(p, "rematch")) {
                return Value{{"rematch", false}};
            }
        }
        return std::nullopt;
    }
    if (text(view, "turn") != me) return std::nullopt;
    const Value board = array(view, "board");
    for (std::size_t i = 0; i < board.size(); ++i) {
        if (board[i] == "") return Value{{"cell", i}};
    }
    return std::nullopt;
}

struct Session {
    std::size_t n = 0;
    int fd = -1;
    std::string player_id, match_id;
    std::unique_ptr<vinom::Client> client;
    double started = 0.0, welcomed = -1.0, deadline = 0.0;
    double due = 0.0;  // when the sweep next updates it
    long moves = 0;
    std::int64_t acted_version = -1;
    bool final_seen = false;
};

class Load {
public:
    explicit Load(const Options& o) : o_(o), random_(std::random_device{}()) {
        epoll_ = epoll_create1(0);
        if (epoll_ < 0) {
            std::perror("vinom_load: epoll_create1");
            std::exit(2);
        }
    }

    // A session from one line of the input.
    void start(const std::string& line, double now) {
        Session s;
        s.n = next_n_++;
        s.started = now;
        vinom::PublicToken token;
        if (vinom::parse_public_token(line, token) != Error::ok || token.hosts.empty()) {
            report(s, "bad_token", now);
            return;
        }
        s.player_id = token.player_id;
        s.match_id = token.match_id;
        s.fd = open_socket(token.hosts[0]);
        if (s.fd < 0) {
            report(s, "socket", now);
            return;
        }
        std::uint64_t first = random_() & ((1ull << 48) - 1);
        s.client = std::make_unique<vinom::Client>(token, first, now, o_.attempt_timeout);
        s.deadline = now + o_.session_seconds;
        std::uint32_t slot = free_slot();
        epoll_event e{};
        e.events = EPOLLIN;
        e.data.u32 = slot;
        if (epoll_ctl(epoll_, EPOLL_CTL_ADD, s.fd, &e) != 0) {
            close(s.fd);
            report(s, "socket", now);
            return;
        }
        sessions_[slot] = std::make_unique<Session>(std::move(s));
        ++open_;
        most_open_ = std::max(most_open_, open_);
        step(slot, now);
    }

    // Datagrams for the session in `slot`, then its timers and events.
    void readable(std::uint32_t slot, double now) {
        Session* s = sessions_[slot].get();
        if (s == nullptr) return;
        std::uint8_t buffer[2048];
        while (true) {
            ssize_t got = recv(s->fd, buffer, sizeof buffer, 0);
            if (got < 0) break;  // EAGAIN, or an ICMP error: the timers decide
            // Forged, replayed or unexpected datagrams are dropped by the client.
            (void)s->client->receive(vinom::View(buffer, static_cast<std::size_t>(got)), now);
        }
        step(slot, now);
    }

    void sweep(double now) {
        for (std::uint32_t slot = 0; slot < sessions_.size(); ++slot) {
            if (sessions_[slot] && sessions_[slot]->due <= now) step(slot, now);
        }
    }

    std::size_t open() const { return open_; }
    int epoll() const { return epoll_; }
    std::size_t sessions() const { return next_n_; }
    std::size_t failed() const { return failed_; }
    std::size_t most_open() const { return most_open_; }

private:
    static void flush(Session& s) {
        Bytes packet;
        // A full socket buffer or a refused send loses the datagram, as the
        // network may: the protocol resends or times out.
        while (s.client->next_datagram(packet)) {
            (void)::send(s.fd, packet.data(), packet.size(), 0);
        }
    }

    int open_socket(const vinom::Host& host) {
        std::string key = host.host + " " + std::to_string(host.port);
        auto found = addresses_.find(key);
        if (found == addresses_.end()) {
            addrinfo hints{};
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_DGRAM;
            addrinfo* list = nullptr;
            if (getaddrinfo(host.host.c_str(), std::to_string(host.port).c_str(), &hints,
                            &list) != 0 ||
                list == nullptr) {
                return -1;
            }
            sockaddr_storage address{};
            std::memcpy(&address, list->ai_addr, list->ai_addrlen);
            found = addresses_.emplace(key, std::make_pair(address, list->ai_addrlen)).first;
            freeaddrinfo(list);
        }
        const auto& [address, length] = found->second;
        int fd = socket(address.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        // Connected: the kernel drops datagrams from any other source.
        if (connect(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
            close(fd);
            return -1;
        }
        return fd;
    }

    std::uint32_t free_slot() {
        if (!free_.empty()) {
            std::uint32_t slot = free_.back();
            free_.pop_back();
            return slot;
        }
        sessions_.emplace_back();
        return static_cast<std::uint32_t>(sessions_.size() - 1);
    }

    void send(Session& s, const Value& message) {
        Bytes bytes;
        if (vinom::encode_message(message, bytes) == Error::ok &&
            s.client->send(std::move(bytes)) == Error::ok) {
            ++s.moves;
        }
    }

    // Runs the session's timers and reads its events; ends it when it is done.
    void step(std::uint32_t slot, double now) {
        Session& s = *sessions_[slot];
        vinom::Client& client = *s.client;
        client.update(now);
        flush(s);
        std::optional<std::string> ended;  // "" when it ended well, else the reason
        vinom::Client::Event event;
        while (!ended && client.next_event(event)) {
            using Kind = vinom::Client::Event::Kind;
            if (event.kind == Kind::failed) {
                ended = event.reason == "denied" ? "denied" : "timeout";
            } else if (event.kind == Kind::welcome) {
                s.welcomed = now;
            } else if (event.kind == Kind::disconnected) {
                ended = s.final_seen ? "" : "disconnect";
            } else if (event.kind == Kind::message) {
                Value m;
                if (vinom::decode_message(vinom::View(event.data), m) != Error::ok ||
                    !m.is_object()) {
                    continue;  // not msgpack, or a snap: not this client's games
                }
                std::string t = text(m, "t");
                std::string phase = text(m, "p");
                bool over = phase == "finished" || phase == "aborted";
                if (!o_.tictactoe) {
                    if ((t == "state" || t == "phase") && (phase == "countdown" || phase == "playing")) {
                        send(s, Value{{"t", "leave"}});
                        s.moves = 0;  // the leave is no move
                        ended = "";
                    } else if ((t == "state" || t == "phase") && over) {
                        ended = "ended";
                    }
                    continue;
                }
                if (t == "phase" && over) {
                    s.final_seen = true;
                    ended = "";
                } else if (t == "state" && m.contains("s") &&
                           number(m, "v") > s.acted_version) {
                    s.acted_version = number(m, "v");
                    if (auto move = tictactoe_move(m["s"], s.player_id)) {
                        send(s, Value{{"t", "action"}, {"a", *move}});
                    }
                }
            }
        }
        if (!ended && now >= s.deadline) ended = "too_slow";
        if (!ended) {
            // The handshake resends and reliable resends are due at 10 Hz; an idle
            // connected session only has its keepalive (a third of the session
            // timeout) and its timeout: a sweep in IDLE is soon enough.
            bool busy = client.state() != vinom::Client::State::connected || client.pending() > 0;
            s.due = now + (busy ? SWEEP : IDLE);
            return;
        }
        // Whatever is queued (the leave), then section 8's redundant disconnects.
        client.update(now);
        client.close();
        flush(s);
        epoll_ctl(epoll_, EPOLL_CTL_DEL, s.fd, nullptr);
        close(s.fd);
        report(s, *ended, now);
        sessions_[slot].reset();
        free_.push_back(slot);
        --open_;
    }

    void report(const Session& s, const std::string& reason, double now) {
        Value line{{"event", "session"}, {"n", s.n}, {"player_id", s.player_id},
                   {"match_id", s.match_id}, {"result", reason.empty() ? "ok" : "failed"}};
        if (!reason.empty()) {
            line["reason"] = reason;
            ++failed_;
        }
        line["welcome_ms"] = s.welcomed < 0 ? Value() : Value((s.welcomed - s.started) * 1000.0);
        line["ms"] = (now - s.started) * 1000.0;
        line["moves"] = s.moves;
        std::cout << line.dump() << '\n' << std::flush;
    }

    const Options& o_;
    std::mt19937_64 random_;
    int epoll_ = -1;
    std::vector<std::unique_ptr<Session>> sessions_;
    std::vector<std::uint32_t> free_;
    std::map<std::string, std::pair<sockaddr_storage, socklen_t>> addresses_;
    std::size_t next_n_ = 0, open_ = 0, most_open_ = 0, failed_ = 0;
};

double cpu_seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; }

}  // namespace

int main(int argc, char** argv) {
    Options o;
    bool named = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "--session-seconds" || a == "--attempt-timeout") && i + 1 < argc) {
            char* end = nullptr;
            double v = std::strtod(argv[++i], &end);
            if (*end != '\0' || !(v > 0)) usage(a + " takes a positive number of seconds");
            (a == "--session-seconds" ? o.session_seconds : o.attempt_timeout) = v;
        } else if (a == "--play" && i + 1 < argc) {
            std::string play = argv[++i];
            if (play != "full-room" && play != "tictactoe") {
                usage("--play takes full-room or tictactoe, not " + play);
            }
            o.tictactoe = play == "tictactoe";
        } else if (!named && (a == "-" || a.rfind("--", 0) != 0)) {
            o.tokens = a;
            named = true;
        } else {
            usage("unknown option " + a);
        }
    }
    int input = o.tokens == "-" ? 0 : ::open(o.tokens.c_str(), O_RDONLY | O_CLOEXEC);
    if (input < 0) usage("cannot read " + o.tokens);
    // A socket per session: as many descriptors as the hard limit allows.
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &files);
    }

    Load load(o);
    const double begun = monotonic();
    std::string pending;  // the input's partial line
    bool ended = false;
    // A pipe or terminal is read as it becomes readable; a regular file (which
    // epoll refuses) all at once, below.
    fcntl(input, F_SETFL, fcntl(input, F_GETFL) | O_NONBLOCK);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u32 = INPUT;
    bool polled = epoll_ctl(load.epoll(), EPOLL_CTL_ADD, input, &e) == 0;
    auto read_input = [&](double now) {
        char chunk[65536];
        while (true) {
            ssize_t got = read(input, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0 && polled && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            if (got <= 0) {
                ended = true;
                if (polled) epoll_ctl(load.epoll(), EPOLL_CTL_DEL, input, nullptr);
                if (!pending.empty()) load.start(pending, now);
                pending.clear();
                return;
            }
            pending.append(chunk, static_cast<std::size_t>(got));
            std::size_t at;
            while ((at = pending.find('\n')) != std::string::npos) {
                std::string line = pending.substr(0, at);
                pending.erase(0, at + 1);
                if (line.find_first_not_of(" \t\r") != std::string::npos) load.start(line, now);
            }
        }
    };
    if (!polled) read_input(monotonic());

    double next_sweep = monotonic() + SWEEP;
    std::vector<epoll_event> ready(1024);
    while (!ended || load.open() > 0) {
        double now = monotonic();
        int wait = static_cast<int>(std::max(0.0, (next_sweep - now) * 1000.0)) + 1;
        int n = epoll_wait(load.epoll(), ready.data(), static_cast<int>(ready.size()), wait);
        now = monotonic();
        for (int i = 0; i < n; ++i) {
            if (ready[i].data.u32 == INPUT) {
                read_input(now);
            } else {
                load.readable(ready[i].data.u32, now);
            }
        }
        if (now >= next_sweep) {
            load.sweep(now);
            next_sweep = now + SWEEP;
        }
    }

    rusage usage_{};
    getrusage(RUSAGE_SELF, &usage_);
    double user = cpu_seconds(usage_.ru_utime), system = cpu_seconds(usage_.ru_stime);
    std::size_t sessions = load.sessions();
    Value summary{{"event", "summary"}, {"sessions", sessions},
                  {"ok", sessions - load.failed()}, {"failed", load.failed()},
                  {"wall_s", monotonic() - begun}, {"cpu_user_s", user}, {"cpu_system_s", system},
                  {"cpu_us_per_session",
                   sessions ? (user + system) * 1e6 / static_cast<double>(sessions) : 0.0},
                  {"most_open", load.most_open()}};
    std::cout << summary.dump() << std::endl;
    return load.failed() == 0 ? 0 : 1;
}
