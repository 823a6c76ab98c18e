// vinom_udp_probe: the native core against a real game host, in the engine
// style: one thread, a non-blocking POSIX UDP socket, and a loop that polls it
// and runs the timers of docs/protocol.md section 8 (handshake resends at
// 10 Hz, the attempt timeout, keepalives, the session timeout).
//
//   vinom_udp_probe TOKEN_FILE HOST PORT [--seconds S] [--attempt-timeout S]
//                   [--play-tictactoe] [--reconnect] [--drop-after-moves N]
//
// TOKEN_FILE holds the connect token of the lobby's match_found (its "token"
// object, docs/protocol.md 4.3; "-" reads stdin); HOST and PORT are the game
// host's UDP address. Every event goes to stdout as one JSON line: "welcome",
// each room "message" (its channel and the msgpack value, as JSON), and
// "disconnected" when the probe closes the session (after S seconds, 5 by
// default, or when the match ends). With --play-tictactoe it also plays its
// seat of tictactoe (the first empty cell; no rematch). A refused, denied or
// unanswered session prints one line starting "vinom_udp_probe: session
// failed:" on stderr and exits 1; a bad command line or token exits 2.
//
// With --reconnect, TOKEN_FILE holds one token per line: a session lost once
// connected (timed out, or closed by the host before the match ended) prints
// "lost" and goes on with the next line's token, which the lobby's `reconnect`
// gives the seat (docs/lobby.md), in a new session from a new socket, as the
// Python client does. --drop-after-moves N simulates the network going once:
// after its N-th move is acknowledged the first session sends and reads nothing
// more ("dropped"), until its session timeout.
//
// The reliability endpoint here is the example's own and minimal (docs/
// protocol.md 13: acks, in-order delivery with reassembly, resends at a fixed
// 200 ms); the core has the body codec only so far.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>

#include "vinom/messages.hpp"
#include "vinom/session.hpp"

namespace {

using vinom::Bytes;
using vinom::Error;
using vinom::Value;

double monotonic() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void emit(const Value& line) { std::cout << line.dump() << std::endl; }

[[noreturn]] void fail(const std::string& reason, const std::string& detail) {
    emit(Value{{"event", "failed"}, {"reason", reason}});
    std::cerr << "vinom_udp_probe: session failed: " << reason << ": " << detail << std::endl;
    std::exit(1);
}

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "vinom_udp_probe: " << why
              << "\nusage: vinom_udp_probe TOKEN_FILE HOST PORT [--seconds S] "
                 "[--attempt-timeout S] [--play-tictactoe] [--reconnect] "
                 "[--drop-after-moves N]"
              << std::endl;
    std::exit(2);
}

// The full value of a 16-bit wire number nearest to `ref` (section 13.2).
std::int64_t nearest(std::uint16_t wire, std::int64_t ref) {
    std::int64_t d = (static_cast<std::int64_t>(wire) - ref) & 0xffff;
    if (d >= 32768) d -= 65536;
    return ref + d;
}

// The example's reliability endpoint: enough of section 13 to take a room's
// messages in order and send a few reliable ones.
class Endpoint {
public:
    // A body from the host: the messages it completes, (channel, data), in order.
    std::vector<std::pair<int, Bytes>> receive(const Bytes& body, double now) {
        std::vector<std::pair<int, Bytes>> done;
        vinom::BodyHeader h;
        std::vector<vinom::Message> messages;
        if (vinom::decode_body(vinom::View(body), vinom::MAX_BODY, h, messages) != Error::ok) {
            return done;  // malformed: dropped (section 13.4)
        }
        // Our acks: the packet sequence, nearest to the newest received.
        std::int64_t seq = received_any_ ? nearest(h.sequence, newest_) : h.sequence;
        if (!received_any_) {
            received_any_ = true;
            newest_ = seq;
            received_bits_ = 0;
            newest_at_ = now;
        } else if (seq > newest_) {
            std::int64_t shift = seq - newest_;
            received_bits_ = shift > 32 ? 0 : (received_bits_ << shift) | (1ull << (shift - 1));
            received_bits_ &= 0xffffffffull;
            newest_ = seq;
            newest_at_ = now;
        } else if (seq == newest_) {
            return done;  // duplicate
        } else {
            std::int64_t back = newest_ - seq - 1;
            if (back >= 32 || (received_bits_ >> back) & 1) return done;
            received_bits_ |= 1ull << back;
        }
        // The host's acks of our bodies.
        if (h.ack != 0xffff || h.ack_bits != 0) {
            acked(nearest(h.ack, next_sequence_ - 1));
            for (int i = 0; i < 32; ++i) {
                if ((h.ack_bits >> i) & 1) acked(nearest(h.ack, next_sequence_ - 1) - 1 - i);
            }
        }
        for (vinom::Message& m : messages) {
            if (m.channel == 1) {
                owe_ack_ = true;
                std::int64_t id = nearest(m.id, next_reliable_);
                if (id >= next_reliable_ && id < next_reliable_ + 256) {
                    buffered_.emplace(id, std::move(m));
                }
                deliver(done);
            } else if (!m.fragment) {
                std::int64_t snap = have_snapshot_ ? nearest(m.id, last_snapshot_) : m.id;
                if (!have_snapshot_ || snap > last_snapshot_) {
                    have_snapshot_ = true;
                    last_snapshot_ = snap;
                    done.emplace_back(0, std::move(m.data));
                }
            }
            // Channel-0 fragments (large snapshots) are not reassembled here.
        }
        return done;
    }

    void send_reliable(Bytes data) { queue_.emplace(next_id_++, Pending{std::move(data), -1.0}); }

    // The bodies to send now: due reliable messages, or an owed ack.
    std::vector<Bytes> build(double now) {
        std::vector<Bytes> out;
        std::vector<vinom::Message> messages;
        std::vector<std::int64_t> ids;
        for (auto& [id, p] : queue_) {
            if (p.sent_at >= 0 && now - p.sent_at < 0.2) continue;
            if (messages.size() == 8) break;
            vinom::Message m;
            m.channel = 1;
            m.id = static_cast<std::uint16_t>(id);
            m.data = p.data;
            messages.push_back(std::move(m));
            ids.push_back(id);
            p.sent_at = now;
        }
        if (messages.empty() && !owe_ack_) return out;
        vinom::BodyHeader h;
        h.sequence = static_cast<std::uint16_t>(next_sequence_);
        if (received_any_) {
            h.ack = static_cast<std::uint16_t>(newest_);
            h.ack_bits = static_cast<std::uint32_t>(received_bits_);
            double ms = (now - newest_at_) * 1000.0 + 0.5;
            h.ack_delay = static_cast<std::uint8_t>(ms > 255 ? 255 : ms);
        }
        Bytes body;
        if (vinom::encode_body(h, messages, vinom::MAX_BODY, body) != Error::ok) return out;
        carried_[next_sequence_] = ids;
        ++next_sequence_;
        owe_ack_ = false;
        out.push_back(std::move(body));
        return out;
    }

    bool idle() const { return queue_.empty(); }

private:
    struct Pending {
        Bytes data;
        double sent_at;
    };

    void acked(std::int64_t sequence) {
        auto it = carried_.find(sequence);
        if (it == carried_.end()) return;
        for (std::int64_t id : it->second) queue_.erase(id);
        carried_.erase(it);
    }

    // Channel 1 in id order; a fragmented message when its last fragment is in.
    void deliver(std::vector<std::pair<int, Bytes>>& done) {
        while (true) {
            auto it = buffered_.find(next_reliable_);
            if (it == buffered_.end()) return;
            vinom::Message m = std::move(it->second);
            buffered_.erase(it);
            ++next_reliable_;
            if (!m.fragment) {
                done.emplace_back(1, std::move(m.data));
                continue;
            }
            if (m.index != (assembling_ ? expected_index_ : 0)) {
                assembling_ = false;  // a protocol error: the partial message is dropped
                partial_.clear();
                continue;
            }
            partial_.insert(partial_.end(), m.data.begin(), m.data.end());
            assembling_ = m.index != m.last;
            expected_index_ = static_cast<std::uint8_t>(m.index + 1);
            if (!assembling_) {
                done.emplace_back(1, std::move(partial_));
                partial_.clear();
            }
        }
    }

    bool received_any_ = false;
    std::int64_t newest_ = 0;
    std::uint64_t received_bits_ = 0;
    double newest_at_ = 0;
    bool owe_ack_ = false;
    std::int64_t next_reliable_ = 0;
    std::map<std::int64_t, vinom::Message> buffered_;
    bool assembling_ = false;
    std::uint8_t expected_index_ = 0;
    Bytes partial_;
    bool have_snapshot_ = false;
    std::int64_t last_snapshot_ = 0;
    std::int64_t next_sequence_ = 0;
    std::int64_t next_id_ = 0;
    std::map<std::int64_t, Pending> queue_;
    std::map<std::int64_t, std::vector<std::int64_t>> carried_;
};

// What --play-tictactoe sends for a state's view, if anything.
std::optional<Value> tictactoe_move(const Value& view, const std::string& me) {
    if (!view.is_object() || view.value("finished", false)) return std::nullopt;
    if (view.value("round_over", false)) {
        for (const Value& p : view.value("players", Value::array())) {
            if (p.is_object() && p.value("id", "") == me && !p.value("rematch", false)) {
                return Value{{"rematch", false}};
            }
        }
        return std::nullopt;
    }
    if (view.value("turn", "") != me) return std::nullopt;
    const Value board = view.value("board", Value::array());
    for (std::size_t i = 0; i < board.size(); ++i) {
        if (board[i] == "") return Value{{"cell", i}};
    }
    return std::nullopt;
}

struct Options {
    std::string token_file, host, port;
    double seconds = 5.0, attempt_timeout = -1.0;
    bool play = false;
    bool reconnect = false;     // a lost session waits for the next token
    long drop_after_moves = 0;  // > 0: the first session goes silent after that many moves
};

// A non-blocking UDP socket connected to the host: the kernel drops datagrams
// from any other source (wrong_source).
int open_socket(const Options& o) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(o.host.c_str(), o.port.c_str(), &hints, &found) != 0 || found == nullptr) {
        usage("cannot resolve " + o.host + " " + o.port);
    }
    int fd = socket(found->ai_family, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, found->ai_addr, found->ai_addrlen) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        std::perror("vinom_udp_probe: socket");
        std::exit(2);
    }
    freeaddrinfo(found);
    return fd;
}

// What outlives one session: the moves made, and whether the simulated drop happened.
struct Play {
    long moves = 0;
    bool dropped = false;
};

// A session lost mid-match (timed out, or closed by the host before the match ended).
struct Lost {
    std::string reason, detail;
};

// One session with `token` on a socket of its own: 0 when it closed as it should
// (by the probe, or by the host after the match ended); a failed handshake ends
// the program (fail); a session lost once connected fills `lost` and returns 1.
int run_session(const Options& o, const vinom::PublicToken& token, Play& played, Lost& lost) {
    int fd = open_socket(o);
    const std::string where = o.host + ":" + o.port;

    std::random_device random;
    std::uint64_t first = ((std::uint64_t{random()} << 32) | random()) & ((1ull << 48) - 1);
    vinom::ClientSession session(token, first);
    Endpoint endpoint;
    const double timeout = token.timeout_ms / 1000.0;
    double attempt_timeout = o.attempt_timeout;
    if (attempt_timeout < 0) attempt_timeout = std::max(timeout + 1.0, 5.0);
    const double keepalive = std::min(2.0, timeout / 3.0);

    auto send = [&](const Bytes& packet) {
        // A full socket buffer loses the datagram, as the network may.
        (void)::send(fd, packet.data(), packet.size(), 0);
    };
    auto seal = [&](std::uint8_t type, const Bytes& body, double now, double& last_sent) {
        Bytes packet;
        if (session.seal(type, vinom::View(body), packet) == Error::ok) send(packet);
        last_sent = now;
    };
    auto lose = [&](const std::string& reason, const std::string& detail) {
        close(fd);
        lost = Lost{reason, detail};
        return 1;
    };

    const double started = monotonic();
    double last_handshake = -1.0, last_sent = 0.0, last_heard = 0.0, connected_at = 0.0;
    const std::string me = token.player_id;
    bool final_seen = false;
    bool silent = false;              // the simulated drop: nothing sent, nothing read
    std::int64_t acted_version = -1;  // a move per state version, once (per session: a
                                      // move in flight may have been lost with the last)
    std::uint8_t buffer[2048];

    while (true) {
        double now = monotonic();
        auto state = session.state();
        if (state == vinom::ClientSession::State::requesting ||
            state == vinom::ClientSession::State::responding) {
            if (now - started > attempt_timeout) {
                std::ostringstream d;
                d << "no welcome from " << where << " within " << attempt_timeout
                  << " s (the host refused or did not answer the token)";
                fail("timeout", d.str());
            }
            if (last_handshake < 0 || now - last_handshake >= 0.1) {
                if (state == vinom::ClientSession::State::requesting &&
                    static_cast<std::uint64_t>(std::time(nullptr)) >= token.expires_at) {
                    fail("token_expired", "the connect token expired before the welcome");
                }
                send(state == vinom::ClientSession::State::requesting ? session.request()
                                                                      : session.response());
                last_handshake = now;
            }
        } else if (state == vinom::ClientSession::State::connected) {
            if (now - last_heard > timeout) {
                return lose("timeout", "no packet from " + where + " for the session timeout");
            }
            if (!silent && o.drop_after_moves > 0 && !played.dropped &&
                played.moves >= o.drop_after_moves && endpoint.idle()) {
                // As if the network went: the host hears nothing more of this session.
                silent = played.dropped = true;
                emit(Value{{"event", "dropped"}});
            }
            if (!silent) {
                if ((now - connected_at >= o.seconds && (!o.play || endpoint.idle())) ||
                    (final_seen && endpoint.idle())) {
                    Bytes none;
                    for (int i = 0; i < 5; ++i) seal(vinom::DISCONNECT, none, now, last_sent);
                    emit(Value{{"event", "disconnected"}, {"reason", "closed"}});
                    close(fd);
                    return 0;
                }
                for (const Bytes& body : endpoint.build(now))
                    seal(vinom::PAYLOAD, body, now, last_sent);
                if (now - last_sent >= keepalive) seal(vinom::KEEPALIVE, Bytes(), now, last_sent);
            }
        }

        pollfd p{fd, POLLIN, 0};
        poll(&p, 1, 10);
        while (true) {
            ssize_t n = recv(fd, buffer, sizeof buffer, 0);
            if (n < 0) break;  // EAGAIN, or an ICMP error: the timers decide
            if (silent) continue;
            now = monotonic();
            vinom::ClientSession::Kind kind;
            Bytes out;
            Error e = session.receive(vinom::View(buffer, static_cast<std::size_t>(n)), kind, out);
            if (e != Error::ok) continue;  // forged, replayed or unexpected: dropped
            last_heard = now;
            switch (kind) {
                case vinom::ClientSession::Kind::challenge:
                    send(out);
                    last_handshake = now;
                    break;
                case vinom::ClientSession::Kind::denied:
                    fail("denied", where + " refused the seat (the token is spent)");
                case vinom::ClientSession::Kind::welcome:
                    connected_at = last_sent = now;
                    emit(Value{{"event", "welcome"}, {"session_id", session.session_id()},
                               {"server_time", session.server_time()}});
                    break;
                case vinom::ClientSession::Kind::disconnect:
                    emit(Value{{"event", "disconnected"}, {"reason", "disconnect"}});
                    if (final_seen) {
                        close(fd);
                        return 0;
                    }
                    return lose("disconnect", where + " closed the session");
                case vinom::ClientSession::Kind::payload:
                    for (auto& [channel, data] : endpoint.receive(out, now)) {
                        Value message;
                        if (vinom::decode_message(vinom::View(data), message) != Error::ok) {
                            continue;  // not msgpack: dropped
                        }
                        if (message.is_array()) {
                            vinom::Snap snap;
                            if (vinom::decode_snap(vinom::View(data), snap) == Error::ok) {
                                message = Value{{"t", "snap"}, {"v", snap.v}, {"ts", snap.ts}};
                            }
                        }
                        emit(Value{{"event", "message"}, {"channel", channel},
                                   {"message", message}});
                        if (!message.is_object()) continue;
                        std::string t = message.value("t", "");
                        if (t == "phase") {
                            std::string phase = message.value("p", "");
                            final_seen = final_seen || phase == "finished" || phase == "aborted";
                        }
                        if (o.play && t == "state" && message.contains("s") &&
                            message.value("v", std::int64_t{-1}) > acted_version) {
                            acted_version = message.value("v", std::int64_t{-1});
                            if (auto move = tictactoe_move(message["s"], me)) {
                                Bytes action;
                                Value a{{"t", "action"}, {"a", *move}};
                                if (vinom::encode_message(a, action) == Error::ok) {
                                    emit(Value{{"event", "sent"}, {"message", a}});
                                    endpoint.send_reliable(std::move(action));
                                    ++played.moves;
                                }
                            }
                        }
                    }
                    break;
                default:
                    break;
            }
        }
    }
}

// The next connect token: the whole file (or stdin), or with --reconnect its
// next line. False at the end of the input.
bool next_token(const Options& o, std::istream& in, vinom::PublicToken& token) {
    std::string text;
    if (o.reconnect) {
        while (text.empty()) {
            if (!std::getline(in, text)) return false;
        }
    } else {
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    Error e = vinom::parse_public_token(text, token);
    if (e != Error::ok) usage(std::string("not a connect token: ") + vinom::error_name(e));
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) usage("expected TOKEN_FILE HOST PORT");
    Options o;
    o.token_file = argv[1];
    o.host = argv[2];
    o.port = argv[3];
    for (int i = 4; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "--seconds" || a == "--attempt-timeout") && i + 1 < argc) {
            char* end = nullptr;
            double v = std::strtod(argv[++i], &end);
            if (*end != '\0' || !(v > 0)) usage(a + " takes a positive number of seconds");
            (a == "--seconds" ? o.seconds : o.attempt_timeout) = v;
        } else if (a == "--drop-after-moves" && i + 1 < argc) {
            char* end = nullptr;
            o.drop_after_moves = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || o.drop_after_moves < 1) usage(a + " takes a positive number");
        } else if (a == "--play-tictactoe") {
            o.play = true;
        } else if (a == "--reconnect") {
            o.reconnect = true;
        } else {
            usage("unknown option " + a);
        }
    }

    std::ifstream file;
    if (o.token_file != "-") {
        file.open(o.token_file, std::ios::binary);
        if (!file) usage("cannot read " + o.token_file);
    }
    std::istream& in = o.token_file == "-" ? std::cin : file;
    vinom::PublicToken token;
    if (!next_token(o, in, token)) usage("no connect token in " + o.token_file);

    Play played;
    while (true) {
        Lost lost;
        if (run_session(o, token, played, lost) == 0) return 0;
        if (!o.reconnect && lost.reason == "disconnect") {
            std::cerr << "vinom_udp_probe: session failed: disconnect: " << lost.detail
                      << std::endl;
            return 1;
        }
        if (!o.reconnect) fail(lost.reason, lost.detail);
        // The lobby's `reconnect` gives the seat a fresh token (docs/lobby.md).
        emit(Value{{"event", "lost"}, {"reason", lost.reason}});
        if (!next_token(o, in, token)) fail(lost.reason, lost.detail + "; no token to reconnect");
    }
}
