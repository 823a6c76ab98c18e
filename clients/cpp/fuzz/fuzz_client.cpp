// libFuzzer target over everything the native client reads from the network:
// datagrams into a session through the C ABI (docs/protocol.md 5, 6, 8), the
// reliability layer's bodies (13.3, 13.4), room messages and snaps (14: read,
// resolved against the numbers kept, written back and read again), delta
// snapshots with quantisation and checksums (16) and schema snapshots (16.8:
// every receiver has the schema vectors' declaration, so a snapshot whose first
// byte is 01 is read as one), and the lobby's connect token (4.3). Built with
// clang's -fsanitize=fuzzer,address,undefined (CMake's
// VINOM_FUZZ, docs/clients.md); the seeds in fuzz/corpus are the vectors of
// vectors/protocol.json (python -m tests.support.fuzz_corpus writes them).
//
// The first byte picks what the rest is:
//   0  datagrams, each a u16 little-endian length then its bytes, into one session
//   1  one body of 13.3, its messages read as room messages, its snaps' snapshots
//   2  one room message, and its snapshot when it is a snap
//   3  delta or schema snapshots (length-prefixed as in 0) into one receiver with
//      rules and the schema
//   4  a connect token's JSON
//   5  bodies (length-prefixed as in 0), each sealed as the host's payload with the
//      session's key into a connected session, every second one short (5.9):
//      what only the host could send
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../tests/support.hpp"
#include "vinom.h"
#include "vinom/delta.hpp"
#include "vinom/session.hpp"

namespace {

struct Fixture {
    std::string token_json;
    vinom::PublicToken token;
    std::uint64_t client_first = 0;
    std::uint64_t host_first = 0;
    vinom::Bytes challenge;
    vinom::Bytes welcome;
    vinom::Quantisation rules;
    vinom::ViewSchema schema;
};

const Fixture* fixture = nullptr;

std::vector<vinom::View> pieces(vinom::View rest) {
    std::vector<vinom::View> out;
    while (rest.size >= 2) {
        std::size_t n = rest.data[0] | (std::size_t{rest.data[1]} << 8);
        if (n > rest.size - 2) n = rest.size - 2;
        out.push_back(rest.sub(2, n));
        rest = rest.sub(2 + n, rest.size - 2 - n);
    }
    return out;
}

void message(vinom::View data, vinom::SnapshotReceiver& receiver) {
    vinom::Value v;
    (void)vinom::decode_message(data, v);
    vinom::Snap snap;
    vinom::Snapshot s;
    if (receiver.receive_snap(data, snap, s) != vinom::Error::ok) return;
    // Written back against its baseline's numbers, it reads as the same snap.
    const vinom::Snap* base = s.baseline_tick ? receiver.snap(*s.baseline_tick) : nullptr;
    if (s.baseline_tick && !base) return;  // the oldest kept, gone for this one
    vinom::SnapFields fields;
    if (base) fields = base->fields();
    vinom::Bytes back;
    vinom::RelativeSnap raw;
    vinom::Snap again;
    if (vinom::encode_snap(snap, s.tick, base ? &fields : nullptr, back) != vinom::Error::ok ||
        vinom::decode_snap(back, raw) != vinom::Error::ok ||
        vinom::resolve_snap(raw, s.tick, base ? &fields : nullptr, again) != vinom::Error::ok ||
        again.v != snap.v || again.ts != snap.ts || again.r != snap.r || again.i != snap.i ||
        again.ik != snap.ik || again.d != snap.d)
        __builtin_trap();
}

void body(vinom::View data, vinom::SnapshotReceiver& receiver) {
    vinom::BodyHeader header;
    std::vector<vinom::Message> messages;
    if (vinom::decode_body(data, vinom::MAX_BODY, header, messages) != vinom::Error::ok) return;
    for (const vinom::Message& m : messages)
        if (!m.fragment) message(m.data, receiver);
}

void datagrams(vinom::View rest) {
    vinom_token* token = nullptr;
    if (vinom_token_parse(fixture->token_json.data(), fixture->token_json.size(), &token) !=
        VINOM_OK)
        __builtin_trap();
    vinom_session* session = nullptr;
    if (vinom_session_new(token, fixture->client_first, &session) != VINOM_OK) __builtin_trap();
    vinom_token_free(token);
    // The same datagrams into the core's session too, where an exception would
    // escape (the C ABI catches any).
    vinom::ClientSession core(fixture->token, fixture->client_first);
    vinom::SnapshotReceiver receiver(fixture->rules, fixture->schema);
    std::uint8_t out[VINOM_MAX_DATAGRAM];
    for (vinom::View p : pieces(rest)) {
        vinom_event event = VINOM_EVENT_NONE;
        std::size_t len = 0;
        if (vinom_session_receive(session, p.data, p.size, &event, out, sizeof out, &len) ==
                VINOM_OK &&
            event == VINOM_EVENT_PAYLOAD)
            body(vinom::View(out, len), receiver);
        vinom::ClientSession::Kind kind;
        vinom::Bytes plain;
        (void)core.receive(p, kind, plain);
    }
    vinom_session_free(session);
}

void sealed_bodies(vinom::View rest) {
    vinom::ClientSession session(fixture->token, fixture->client_first);
    vinom::ClientSession::Kind kind;
    vinom::Bytes out;
    if (session.receive(fixture->challenge, kind, out) != vinom::Error::ok ||
        session.receive(fixture->welcome, kind, out) != vinom::Error::ok)
        __builtin_trap();
    vinom::SnapshotReceiver receiver(fixture->rules, fixture->schema);
    std::uint64_t sequence = fixture->host_first;
    const vinom::Key& key = fixture->token.server_to_client_key;
    for (vinom::View p : pieces(rest)) {
        vinom::Bytes packet;
        ++sequence;
        vinom::Error e = sequence % 2 ? vinom::seal_short_payload(key, sequence, p, packet)
                                      : vinom::seal_packet(vinom::PAYLOAD, key, sequence, p, packet);
        if (e != vinom::Error::ok) continue;  // longer than a datagram
        if (session.receive(packet, kind, out) != vinom::Error::ok ||
            kind != vinom::ClientSession::Kind::payload)
            __builtin_trap();  // the host's own payload, refused
        body(out, receiver);
    }
}

void snapshots(vinom::View rest) {
    vinom::SnapshotReceiver receiver(fixture->rules, fixture->schema);
    for (vinom::View p : pieces(rest)) {
        vinom::Snapshot s;
        (void)receiver.receive(p, s);
    }
}

void token_json(vinom::View rest) {
    // The core first, where an exception would escape (the C ABI catches any).
    vinom::PublicToken parsed;
    (void)vinom::parse_public_token(
        std::string_view(reinterpret_cast<const char*>(rest.data), rest.size), parsed);
    vinom_token* token = nullptr;
    if (vinom_token_parse(reinterpret_cast<const char*>(rest.data), rest.size, &token) !=
        VINOM_OK)
        return;
    vinom_session* session = nullptr;
    if (vinom_session_new(token, 0, &session) == VINOM_OK) {
        std::uint8_t out[VINOM_MAX_DATAGRAM];
        std::size_t len = 0;
        (void)vinom_session_request(session, out, sizeof out, &len);
        vinom_session_free(session);
    }
    vinom_token_free(token);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    auto* f = new Fixture;
    const auto& session = vt::vectors().at("session");
    f->token_json = session.at("token").dump();
    if (vinom::parse_public_token(f->token_json, f->token) != vinom::Error::ok) __builtin_trap();
    f->client_first = session.at("derived").at("client_first_sequence");
    f->host_first = session.at("derived").at("first_session_sequence");
    f->challenge = vt::unhex(vt::vector("session", "challenge").at("hex"));
    f->welcome = vt::unhex(vt::vector("session", "welcome").at("hex"));
    if (vinom::Quantisation::from_rules(vt::vector("delta", "full_quantised").at("rules"),
                                        f->rules) != vinom::Error::ok)
        __builtin_trap();
    if (vinom::ViewSchema::from_declaration(vt::vectors().at("schema").at("schema"), f->schema) !=
        vinom::Error::ok)
        __builtin_trap();
    fixture = f;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    vinom::View rest(data + 1, size - 1);
    vinom::SnapshotReceiver receiver(fixture->rules, fixture->schema);
    switch (data[0] % 6) {
        case 0: datagrams(rest); break;
        case 1: body(rest, receiver); break;
        case 2: message(rest, receiver); break;
        case 3: snapshots(rest); break;
        case 4: token_json(rest); break;
        default: sealed_bodies(rest); break;
    }
    return 0;
}
