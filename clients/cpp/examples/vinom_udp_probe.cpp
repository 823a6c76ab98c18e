// vinom_udp_probe: the native core against a real game host, in the engine
// style: one thread, a non-blocking POSIX UDP socket, and a loop that polls it
// every 10 ms and updates the core's client, which runs the timers of
// docs/protocol.md section 8 (handshake resends at 10 Hz, the attempt
// timeout, keepalives, the session timeout).
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
// seat of tictactoe (the first empty cell; no rematch); --pad N adds a "pad"
// of N characters to each action, so that it travels in fragments. A refused, denied or
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
// From the lobby instead of a token file, with the core's lobby client
// (include/vinom/lobby.hpp: TLS verified against CERT, in the same loop):
//
//   vinom_udp_probe --lobby HOST PORT --trust CERT [--name N] [--idle-timeout S]
//                   (--create-room GAME [--add-bot] | --join-room CODE | --queue GAME)
//                   [the options above]
//
// says hello, gets a seat and plays it at the host of match_found's token
// (printing "lobby_welcome", "room" and "match_found" lines first); with
// --reconnect a lost session gets its fresh token from the lobby's
// `reconnect`. A lobby that cannot be reached or verified prints one line
// starting "vinom_udp_probe: lobby failed:", an `error` frame one starting
// "vinom_udp_probe: lobby error:", and exits 1.
//
// With --play-arena it plays a real-time game of the arena's shape (a
// `{"move": [vx, vy], "n": k}` input each tick of the game's rate, by its own
// clock, as a game samples its controls each frame; `n` counts them): each
// `snap` goes through the core's SnapshotReceiver (delta decoding, the
// checksum when the host sends it; with the welcome's view schema `vs`, schema
// snapshots, which the host sends from the first snap; the snap's numbers
// resolved against those of its baseline's), and each input is stamped by the core's TickClock and repeated by
// its InputQueue until a snap's `ik` acknowledges it, on the unreliable channel
// (include/vinom/realtime.hpp). Before "disconnected" it prints an "arena"
// line: inputs given, those still unacknowledged, snapshots applied (`schema`
// of them schema snapshots) and dropped by reason. --loss P (with
// --seed N) drops that share of the datagrams each way, as a lossy network
// would (counted in "arena": dropped_out, dropped_in).
//
// Before "disconnected" (and "arena") it prints a "packets" line: the payloads
// sent and received, of them short ones (docs/protocol.md 5.9: offered after
// the welcome, `offers` of them) and of those slim ones (5.10), and the
// datagrams the client dropped.
//
// The session, its timers and the reliability endpoint are the core's
// vinom::Client (include/vinom/client.hpp); the probe owns the socket, the
// clock and the game.
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

#include "vinom/client.hpp"
#include "vinom/delta.hpp"
#include "vinom/lobby.hpp"
#include "vinom/messages.hpp"
#include "vinom/realtime.hpp"

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
                 "[--drop-after-moves N] [--pad N] [--play-arena] [--loss P] [--seed N]\n"
                 "       vinom_udp_probe --lobby HOST PORT --trust CERT [--name N] "
                 "(--create-room GAME [--add-bot] | --join-room CODE | --queue GAME) [...]"
              << std::endl;
    std::exit(2);
}

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
    // --lobby: where the seat comes from instead of TOKEN_FILE.
    std::string lobby_host, lobby_port, trust, name = "Native", create_room, join_room,
        queue_game;
    bool add_bot = false;
    double seconds = 5.0, attempt_timeout = -1.0;
    double idle_timeout = 70.0;  // --idle-timeout: the lobby's, silent that long (vinom.h)
    bool play = false;
    bool arena = false;         // --play-arena
    double loss = 0.0;          // --loss: the share of datagrams dropped each way
    std::uint64_t seed = 1;
    bool reconnect = false;     // a lost session waits for the next token
    long drop_after_moves = 0;  // > 0: the first session goes silent after that many moves
    long pad = 0;               // --pad: characters of padding in each action (a large message)
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

// --play-arena's side of one session (see the top of the file).
struct Arena {
    std::optional<vinom::SnapshotReceiver> receiver;  // from the welcome's `q` and `vs`
    std::optional<vinom::TickClock> clock;            // from its `tick_rate`
    vinom::InputQueue inputs;
    std::int64_t given = 0;  // inputs given, numbered from 1 (`n`)
    std::uint64_t schema = 0;  // schema snapshots applied (16.8)
    double next_input_at = 0.0;

    Value report(std::uint64_t dropped_out, std::uint64_t dropped_in) const {
        vinom::SnapshotReceiver::Drops d = receiver ? receiver->drops() : vinom::SnapshotReceiver::Drops{};
        return Value{{"event", "arena"},
                     {"inputs", given},
                     {"unacknowledged", inputs.pending()},
                     {"overflowed", inputs.overflowed()},
                     {"snapshots", receiver ? receiver->applied() : 0},
                     {"schema", schema},
                     {"drops", Value{{"corrupt", d.corrupt},
                                     {"unknown_baseline", d.unknown_baseline},
                                     {"checksum", d.checksum},
                                     {"stale", d.stale}}},
                     {"dropped_out", dropped_out},
                     {"dropped_in", dropped_in}};
    }
};

// A session lost mid-match (timed out, or closed by the host before the match ended).
struct Lost {
    std::string reason, detail;
};

// A snap for --play-arena: its snapshot applied (or dropped and counted), the
// inputs it acknowledges forgotten.
// The snap's numbers resolved go in `message` when it was applied.
void arena_snap(Arena& arena, vinom::View data, Value& message, double now) {
    vinom::Snap snap;
    vinom::Snapshot applied;
    Error e = arena.receiver->receive_snap(data, snap, applied);
    if (snap.ik && *snap.ik >= 0) arena.inputs.acknowledge(static_cast<std::uint64_t>(*snap.ik));
    if (e == Error::ok) {
        message["v"] = snap.v;
        message["ts"] = snap.ts;
        arena.clock->observe(applied.tick, now);
        if (snap.d[0] == vinom::SCHEMA_FORMAT) ++arena.schema;
    }
}

// --play-arena's next input, once a tick of the game's rate (from the first
// snapshot on): given and sent with every one not yet acknowledged. Not one per
// snap: the snaps queued behind the session's opening arrive together.
void arena_input(Arena& arena, vinom::Client& client, std::mt19937_64& player,
                 std::uniform_real_distribution<double>& speed, double now, double tick_rate) {
    if (!arena.receiver || !arena.receiver->newest() || tick_rate <= 0 ||
        now < arena.next_input_at) {
        return;
    }
    arena.next_input_at = std::max(arena.next_input_at + 1.0 / tick_rate, now);
    Value input{{"move", Value::array({speed(player), speed(player)})}, {"n", ++arena.given}};
    arena.inputs.add(arena.clock->input_tick(now, 0.0), std::move(input));
    Bytes message;
    Value input_message = arena.inputs.message(arena.receiver->newest());
    if (vinom::encode_message(input_message, message) == Error::ok) {
        (void)client.send_unreliable(std::move(message));
    }
}

// One session with `token` on a socket of its own: 0 when it closed as it should
// (by the probe, or by the host after the match ended); a failed handshake ends
// the program (fail); a session lost once connected fills `lost` and returns 1.
int run_session(const Options& o, const vinom::PublicToken& token, Play& played, Lost& lost) {
    int fd = open_socket(o);
    const std::string where = o.host + ":" + o.port;

    std::random_device random;
    std::uint64_t first = ((std::uint64_t{random()} << 32) | random()) & ((1ull << 48) - 1);
    double attempt_timeout = o.attempt_timeout;
    if (attempt_timeout < 0) attempt_timeout = std::max(token.timeout_ms / 1000.0 + 1.0, 5.0);
    vinom::Client client(token, first, monotonic(), attempt_timeout);

    bool silent = false;  // the simulated drop: nothing sent, nothing read
    // --loss: the simulated network's own generator, seeded.
    std::mt19937_64 network(o.seed);
    std::uniform_real_distribution<double> share(0.0, 1.0);
    std::uint64_t dropped_out = 0, dropped_in = 0;
    auto lost_on_the_way = [&](std::uint64_t& count) {
        if (o.loss <= 0 || share(network) >= o.loss) return false;
        ++count;
        return true;
    };
    auto flush = [&]() {
        Bytes packet;
        // A full socket buffer loses the datagram, as the network may; a silent
        // session loses them all.
        while (client.next_datagram(packet)) {
            if (!silent && !lost_on_the_way(dropped_out)) {
                (void)::send(fd, packet.data(), packet.size(), 0);
            }
        }
    };
    Arena arena;
    double tick_rate = 0.0;              // the welcome's
    std::mt19937_64 player(o.seed + 1);  // the arena player's velocities
    std::uniform_real_distribution<double> speed(-100.0, 100.0);
    auto lose = [&](const std::string& reason, const std::string& detail) {
        close(fd);
        lost = Lost{reason, detail};
        return 1;
    };

    double connected_at = 0.0;
    bool welcomed = false, final_seen = false;
    const std::string me = token.player_id;
    std::int64_t acted_version = -1;  // a move per state version, once (per session: a
                                      // move in flight may have been lost with the last)
    std::uint8_t buffer[2048];

    while (true) {
        double now = monotonic();
        if (client.state() == vinom::Client::State::requesting &&
            static_cast<std::uint64_t>(std::time(nullptr)) >= token.expires_at) {
            fail("token_expired", "the connect token expired before the welcome");
        }
        // `welcomed`: the welcome event was read (connected_at is its time).
        if (welcomed && !silent && client.state() == vinom::Client::State::connected &&
            client.pending() == 0) {
            if (o.drop_after_moves > 0 && !played.dropped && played.moves >= o.drop_after_moves) {
                // As if the network went: the host hears nothing more of this session.
                silent = played.dropped = true;
                emit(Value{{"event", "dropped"}});
            } else if ((now - connected_at >= o.seconds) || final_seen) {
                client.close();
                flush();
                const vinom::Client::Counts& n = client.counts();
                emit(Value{{"event", "packets"},
                           {"payloads_sent", n.payloads_sent},
                           {"short_sent", n.short_sent},
                           {"slim_sent", n.slim_sent},
                           {"payloads_received", n.payloads_received},
                           {"short_received", n.short_received},
                           {"slim_received", n.slim_received},
                           {"offers", n.offers},
                           {"dropped", n.dropped}});
                if (o.arena) emit(arena.report(dropped_out, dropped_in));
                emit(Value{{"event", "disconnected"}, {"reason", "closed"}});
                close(fd);
                return 0;
            }
        }
        if (o.arena && welcomed && !silent) arena_input(arena, client, player, speed, now, tick_rate);
        client.update(now);
        flush();

        vinom::Client::Event event;
        while (client.next_event(event)) {
            switch (event.kind) {
                case vinom::Client::Event::Kind::failed:
                    if (event.reason == "denied") {
                        fail("denied", where + " refused the seat (the token is spent)");
                    } else if (welcomed) {
                        return lose("timeout",
                                    "no packet from " + where + " for the session timeout");
                    } else {
                        std::ostringstream d;
                        d << "no welcome from " << where << " within " << attempt_timeout
                          << " s (the host refused or did not answer the token)";
                        fail("timeout", d.str());
                    }
                case vinom::Client::Event::Kind::welcome:
                    welcomed = true;
                    connected_at = now;
                    emit(Value{{"event", "welcome"}, {"session_id", client.session_id()},
                               {"server_time", client.server_time()}});
                    break;
                case vinom::Client::Event::Kind::disconnected:
                    emit(Value{{"event", "disconnected"}, {"reason", "disconnect"}});
                    if (final_seen) {
                        close(fd);
                        return 0;
                    }
                    return lose("disconnect", where + " closed the session");
                case vinom::Client::Event::Kind::message: {
                    Value message;
                    vinom::RelativeSnap snap;  // not msgpack; its numbers relative
                    if (vinom::decode_snap(vinom::View(event.data), snap) == Error::ok) {
                        message = Value{{"t", "snap"}};  // "v", "ts" once resolved
                        if (o.arena && arena.receiver)
                            arena_snap(arena, vinom::View(event.data), message, now);
                    } else if (vinom::decode_message(vinom::View(event.data), message) !=
                               Error::ok) {
                        break;  // not msgpack: dropped
                    }
                    emit(Value{{"event", "message"}, {"channel", event.channel},
                               {"message", message}});
                    if (!message.is_object()) break;
                    std::string t = message.value("t", "");
                    if (t == "welcome" && o.arena) {
                        vinom::Quantisation q;
                        if (vinom::Quantisation::from_rules(message.value("q", Value()), q) !=
                            Error::ok) {
                            fail("bad_welcome", "the welcome's q cannot be read");
                        }
                        // A view schema it cannot read: its schema snapshots
                        // are dropped, counted corrupt.
                        std::optional<vinom::ViewSchema> schema;
                        vinom::ViewSchema declared;
                        if (message.contains("vs") &&
                            vinom::ViewSchema::from_declaration(message["vs"], declared) ==
                                Error::ok) {
                            schema = std::move(declared);
                        }
                        arena.receiver.emplace(q, std::move(schema));
                        tick_rate = message.value("tick_rate", 0.0);
                        arena.clock.emplace(tick_rate);
                    }
                    if (t == "phase") {
                        std::string phase = message.value("p", "");
                        final_seen = final_seen || phase == "finished" || phase == "aborted";
                    }
                    if (o.play && t == "state" && message.contains("s") &&
                        message.value("v", std::int64_t{-1}) > acted_version) {
                        acted_version = message.value("v", std::int64_t{-1});
                        if (auto move = tictactoe_move(message["s"], me)) {
                            Bytes action;
                            if (o.pad > 0) (*move)["pad"] = std::string(static_cast<std::size_t>(o.pad), 'x');
                            Value a{{"t", "action"}, {"a", *move}};
                            if (vinom::encode_message(a, action) == Error::ok &&
                                client.send(std::move(action)) == Error::ok) {
                                ++played.moves;
                                emit(Value{{"event", "sent"}, {"message", a}});
                            }
                        }
                    }
                    break;
                }
                default:
                    break;
            }
        }

        pollfd p{fd, POLLIN, 0};
        poll(&p, 1, 10);
        while (true) {
            ssize_t n = recv(fd, buffer, sizeof buffer, 0);
            if (n < 0) break;  // EAGAIN, or an ICMP error: the timers decide
            if (silent || lost_on_the_way(dropped_in)) continue;
            // Forged, replayed or unexpected datagrams are dropped by the client.
            (void)client.receive(vinom::View(buffer, static_cast<std::size_t>(n)), monotonic());
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

// The player's seat at the lobby: kept from the welcome for `reconnect`.
struct Seat {
    std::string player_id, secret;
};

[[noreturn]] void lobby_failed(const std::string& why) {
    emit(Value{{"event", "failed"}, {"reason", "lobby"}});
    std::cerr << "vinom_udp_probe: lobby failed: " << why << std::endl;
    std::exit(1);
}

// A connect token from the lobby: hello and the seat the options ask for (or,
// `seat` already known, `reconnect`), driven by update() every 10 ms as a
// game's frame loop would; the token's JSON of match_found.
std::string lobby_token(const Options& o, Seat& seat) {
    vinom::Lobby::Options options;
    options.host = o.lobby_host;
    options.port = static_cast<std::uint16_t>(std::strtoul(o.lobby_port.c_str(), nullptr, 10));
    options.idle_timeout = o.idle_timeout;
    options.trust = o.trust;
    vinom::Lobby lobby(options, monotonic());
    const bool again = !seat.player_id.empty();
    if (again) {
        lobby.reconnect(seat.player_id, seat.secret);
    } else {
        lobby.hello(o.name);
    }
    std::int64_t room_request = 0;
    bool bot_asked = false;
    const double deadline = monotonic() + 60.0;
    while (monotonic() < deadline) {
        lobby.update(monotonic());
        vinom::LobbyEvent event;
        while (lobby.next_event(event)) {
            using Kind = vinom::LobbyEvent::Kind;
            switch (event.kind) {
                case Kind::failed:
                    lobby_failed(event.reason);
                case Kind::closed:
                    lobby_failed("the lobby closed the connection before match_found");
                case Kind::error:
                    emit(Value{{"event", "failed"}, {"reason", "lobby"}, {"code", event.code}});
                    std::cerr << "vinom_udp_probe: lobby error: " << event.code << ": "
                              << event.message << std::endl;
                    std::exit(1);
                case Kind::welcome:
                    seat = Seat{event.player_id, event.secret};
                    emit(Value{{"event", "lobby_welcome"}, {"player_id", event.player_id}});
                    if (!o.create_room.empty()) {
                        room_request = lobby.create_room(o.create_room);
                    } else if (!o.join_room.empty()) {
                        room_request = lobby.join_room(o.join_room);
                    } else {
                        lobby.queue(o.queue_game);
                    }
                    break;
                case Kind::room: {
                    Value frame = Value::parse(event.frame, nullptr, false);
                    emit(Value{{"event", "room"}, {"room", frame.value("room", Value())}});
                    if (o.add_bot && !bot_asked && event.id == room_request) {
                        bot_asked = true;
                        lobby.add_bot();
                    }
                    break;
                }
                case Kind::match_found:
                    emit(Value{{"event", "match_found"}, {"game_id", event.game_id}});
                    lobby.close();
                    return event.token;
                default:
                    break;
            }
        }
        ::usleep(10000);
    }
    lobby_failed("no match_found within 60 s");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) usage("expected TOKEN_FILE HOST PORT");
    Options o;
    const bool from_lobby = std::string(argv[1]) == "--lobby";
    if (from_lobby) {
        o.lobby_host = argv[2];
        o.lobby_port = argv[3];
    } else {
        o.token_file = argv[1];
        o.host = argv[2];
        o.port = argv[3];
    }
    for (int i = 4; i < argc; ++i) {
        std::string a = argv[i];
        if (from_lobby && i + 1 < argc &&
            (a == "--trust" || a == "--name" || a == "--create-room" || a == "--join-room" ||
             a == "--queue")) {
            std::string v = argv[++i];
            (a == "--trust"         ? o.trust
             : a == "--name"        ? o.name
             : a == "--create-room" ? o.create_room
             : a == "--join-room"   ? o.join_room
                                    : o.queue_game) = v;
        } else if (from_lobby && a == "--add-bot") {
            o.add_bot = true;
        } else if ((a == "--seconds" || a == "--attempt-timeout" ||
                    (from_lobby && a == "--idle-timeout")) &&
                   i + 1 < argc) {
            char* end = nullptr;
            double v = std::strtod(argv[++i], &end);
            if (*end != '\0' || !(v > 0)) usage(a + " takes a positive number of seconds");
            (a == "--seconds" ? o.seconds : a == "--idle-timeout" ? o.idle_timeout
                                                                  : o.attempt_timeout) = v;
        } else if (a == "--drop-after-moves" && i + 1 < argc) {
            char* end = nullptr;
            o.drop_after_moves = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || o.drop_after_moves < 1) usage(a + " takes a positive number");
        } else if (a == "--pad" && i + 1 < argc) {
            char* end = nullptr;
            o.pad = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || o.pad < 1 || o.pad > 2000) usage("--pad takes 1 to 2000 characters");
        } else if (a == "--play-tictactoe") {
            o.play = true;
        } else if (a == "--play-arena") {
            o.arena = true;
        } else if ((a == "--loss" || a == "--seed") && i + 1 < argc) {
            char* end = nullptr;
            double v = std::strtod(argv[++i], &end);
            if (*end != '\0' || !(v >= 0) || (a == "--loss" && !(v < 1))) {
                usage(a == "--loss" ? "--loss takes a share from 0 to below 1"
                                    : "--seed takes a number");
            }
            if (a == "--loss") {
                o.loss = v;
            } else {
                o.seed = static_cast<std::uint64_t>(v);
            }
        } else if (a == "--reconnect") {
            o.reconnect = true;
        } else {
            usage("unknown option " + a);
        }
    }

    if (from_lobby) {
        if (o.create_room.empty() + o.join_room.empty() + o.queue_game.empty() != 2) {
            usage("--lobby takes one of --create-room, --join-room and --queue");
        }
        Seat seat;
        Play played;
        std::string text = lobby_token(o, seat);
        while (true) {
            vinom::PublicToken token;
            Error e = vinom::parse_public_token(text, token);
            if (e != Error::ok || token.hosts.empty()) {
                lobby_failed(std::string("match_found's token: ") + vinom::error_name(e));
            }
            // The game host of the token (the probe's HOST PORT in the token file's form).
            o.host = token.hosts[0].host;
            o.port = std::to_string(token.hosts[0].port);
            Lost lost;
            if (run_session(o, token, played, lost) == 0) return 0;
            if (!o.reconnect) fail(lost.reason, lost.detail);
            emit(Value{{"event", "lost"}, {"reason", lost.reason}});
            text = lobby_token(o, seat);  // `reconnect`: a fresh token for the seat
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
