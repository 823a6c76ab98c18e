// vinom's native client core: the sans-I/O codec of the UDP session protocol.
//
// Everything here is pure: bytes in, bytes or fields out, no sockets, no
// threads, no clock. The layouts are docs/protocol.md's (sections 4, 5, 6, 13.3
// and 13.4); every function that reads network bytes returns an Error for any
// input and never reads past the span it was given.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vinom {

using Bytes = std::vector<std::uint8_t>;
using Key = std::array<std::uint8_t, 32>;
using Nonce = std::array<std::uint8_t, 12>;

// A read-only view of bytes (std::span is C++20).
struct View {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
    View() = default;
    View(const std::uint8_t* d, std::size_t n) : data(d), size(n) {}
    View(const Bytes& b) : data(b.data()), size(b.size()) {}  // NOLINT: implicit on purpose
    template <std::size_t N>
    View(const std::array<std::uint8_t, N>& a) : data(a.data()), size(N) {}  // NOLINT
    View sub(std::size_t offset, std::size_t n) const { return {data + offset, n}; }
    Bytes bytes() const { return Bytes(data, data + size); }
};

enum class Error {
    ok = 0,
    truncated,       // shorter than its layout
    bad_size,        // a size the layout does not allow
    bad_type,        // the first byte is not the expected packet type
    bad_field,       // a field out of its range (a length of 0, a bad padding, ...)
    auth_failed,     // the AEAD refused the bytes (wrong key, nonce, ad or bytes)
    replayed,        // the replay window refuses the sequence
    bad_json,        // the public token is not the JSON of section 4.3
    crypto,          // OpenSSL failed for a reason of its own
    unexpected,      // a valid packet that does not fit the session's state
    buffer_too_small,  // (C ABI) the caller's output buffer is too small
    invalid_argument,  // (C ABI) a null handle or pointer
    no_memory,         // (C ABI) an allocation failed
    unknown_baseline,   // (16.1) a delta snapshot against a view not held
    checksum_mismatch,  // (16.4) the rebuilt view is not the host's
    stale,              // (16.1) a snapshot not newer than the newest applied
    queue_full,         // (13) a reliable message past the bytes that may wait for acks
    ended,              // (C ABI) the match ended or the host's port closed: nothing sent
};

const char* error_name(Error e);

// -- constants (docs/protocol.md sections 2, 5, 13) --
// The version in connect tokens and packets (section 5).
constexpr std::uint32_t PROTOCOL_VERSION = 3;
// The game protocol a client states in the lobby's hello and reconnect
// (docs/lobby.md): 4, the one snap form (section 14: relative packed snaps).
constexpr std::uint32_t GAME_PROTOCOL = 4;
constexpr std::size_t MAX_DATAGRAM = 1200;
constexpr std::size_t HEADER_SIZE = 9;
constexpr std::size_t TAG_SIZE = 16;
constexpr std::size_t MAX_BODY = MAX_DATAGRAM - HEADER_SIZE - TAG_SIZE;  // 1175
constexpr std::size_t PRIVATE_TOKEN_SIZE = 1008;
constexpr std::size_t SEALED_TOKEN_SIZE = PRIVATE_TOKEN_SIZE + TAG_SIZE;  // 1024
constexpr std::size_t MIN_COOKIE = 122;
constexpr std::size_t MAX_COOKIE = 504;

enum PacketType : std::uint8_t {
    REQUEST = 0, CHALLENGE = 1, RESPONSE = 2, WELCOME = 3,
    DENIED = 4, PAYLOAD = 5, KEEPALIVE = 6, DISCONNECT = 7,
    SHORT_PAYLOAD = 8, SLIM_PAYLOAD = 9,
};

// The short payload (5.9): u8 type = 8, u16 sequence mod 65536, then the
// payload's seal, whose associated data is the 9-byte header it would have had
// (u8 8 || u64 sequence). At least 19 bytes (an empty plaintext).
constexpr std::size_t SHORT_HEADER_SIZE = 3;
constexpr std::size_t MIN_SHORT_PAYLOAD = SHORT_HEADER_SIZE + TAG_SIZE;  // 19
// A keepalive's first plaintext byte, bit 0: the sender (a client) reads short
// payloads (5.9's offer); bit 1, slim ones (5.10: a short payload, type 9, whose
// plaintext is the body in the slim layout of 13.3).
constexpr std::uint8_t READS_SHORT = 0x01;
constexpr std::uint8_t READS_SLIM = 0x02;

// -- AEAD (AES-256-GCM, section 2) --
Nonce make_nonce(std::uint32_t domain, std::uint64_t sequence);
// seal appends to `out` (which `ad` may point into); open replaces `out`.
Error seal(const Key& key, const Nonce& nonce, View ad, View plaintext, Bytes& out);
Error open(const Key& key, const Nonce& nonce, View ad, View sealed, Bytes& out);

// -- connect tokens (section 4) --
struct Host {
    std::string host;
    std::uint16_t port = 0;
    bool operator==(const Host& o) const { return host == o.host && port == o.port; }
};

struct PrivateToken {  // 4.1: only the lobby and hosts read it; here for tests and tools
    std::uint64_t created_at = 0;
    std::uint32_t timeout_ms = 0;
    Key client_to_server_key{};
    Key server_to_client_key{};
    std::string player_id;
    std::string match_id;
    std::vector<Host> hosts;
    Bytes user_data;
};
Error encode_private_token(const PrivateToken& t, Bytes& out);
Error decode_private_token(View data, PrivateToken& out);
// The 20 bytes of associated data of 4.2 (= bytes 1..21 of the request).
Bytes token_ad(std::uint32_t version, std::uint64_t application_id, std::uint64_t expires_at);

struct PublicToken {  // 4.3: what the lobby's match_found carries
    std::uint32_t version = 0;
    std::uint64_t application_id = 0;
    std::string player_id;
    std::string match_id;
    std::uint64_t created_at = 0;
    std::uint64_t expires_at = 0;
    std::uint32_t timeout_ms = 0;
    std::vector<Host> hosts;
    Nonce nonce{};
    Bytes sealed_token;  // 1024 bytes
    Key client_to_server_key{};
    Key server_to_client_key{};
};
Error parse_public_token(std::string_view json, PublicToken& out);
Error base64_decode(std::string_view text, Bytes& out);  // RFC 4648, padding required

// -- packets (section 5) --
struct Request {  // 5.2
    std::uint32_t version = 0;
    std::uint64_t application_id = 0;
    std::uint64_t expires_at = 0;
    Nonce nonce{};
    Bytes sealed_token;
};
Bytes encode_request(const PublicToken& t);
Error decode_request(View packet, Request& out);

// The header of every other packet (5.1).
Error read_header(View packet, std::uint8_t& type, std::uint64_t& sequence);

// challenge (5.3) and response (5.5): the cookie is opaque.
Error seal_challenge(const Key& s2c, std::uint64_t sequence, View cookie, Bytes& out);
Error open_challenge(const Key& s2c, View packet, std::uint64_t& sequence, Bytes& cookie);
Error seal_response(const Key& c2s, std::uint64_t sequence, View cookie, Bytes& out);
Error open_response(const Key& c2s, View packet, std::uint64_t& sequence, Bytes& cookie);

// welcome (5.6)
struct Welcome {
    std::uint64_t sequence = 0;
    std::uint64_t session_id = 0;
    double server_time = 0;
};
Error seal_welcome(const Key& s2c, const Welcome& w, Bytes& out);
Error open_welcome(const Key& s2c, View packet, Welcome& out);

// denied (5.7, domain 1), payload, keepalive, disconnect (5.8, domain 0).
Error seal_packet(std::uint8_t type, const Key& key, std::uint64_t sequence, View plaintext,
                  Bytes& out);
Error open_packet(const Key& key, View packet, std::uint8_t& type, std::uint64_t& sequence,
                  Bytes& plaintext);

// short payload (5.9, domain 0). The full sequence whose low 16 bits are `low`
// nearest to `newest`, the newest accepted from the sender (a tie goes back):
// false when there is none (it would be below 0, or past 2^64), and the packet
// is dropped as replayed.
bool full_sequence(std::uint16_t low, std::uint64_t newest, std::uint64_t& out);
// `type`: SHORT_PAYLOAD, or SLIM_PAYLOAD (5.10; `plaintext` then a slim body).
Error seal_short_payload(const Key& key, std::uint64_t sequence, View plaintext, Bytes& out,
                         std::uint8_t type = SHORT_PAYLOAD);
// The low 16 bits a short or slim payload carries (truncated, bad_type, bad_size
// otherwise).
Error read_short_header(View packet, std::uint16_t& low);
// Opened as the packet of full sequence `sequence` (full_sequence's, checked
// against the replay window first); bad_field when its low bits are not the packet's.
Error open_short_payload(const Key& key, View packet, std::uint64_t sequence, Bytes& plaintext);

// -- replay protection (section 6) --
class ReplayWindow {
public:
    void start(std::uint64_t sequence);           // the first accepted packet
    bool started() const { return started_; }
    bool check(std::uint64_t sequence) const;     // before opening: may it be new?
    void accept(std::uint64_t sequence);          // after a successful open
    std::uint64_t newest() const { return newest_; }

private:
    bool started_ = false;
    std::uint64_t newest_ = 0;
    std::array<std::uint64_t, 4> bits_{};  // bit i: newest - i accepted
    bool get(std::uint64_t back) const { return (bits_[back / 64] >> (back % 64)) & 1u; }
    void set(std::uint64_t back) { bits_[back / 64] |= std::uint64_t{1} << (back % 64); }
};

// -- route tokens (section 15): the relay's and lobby's side; a client only
// prefixes the token's 51 opaque bytes to each datagram it sends the relay --
constexpr std::size_t ROUTE_TOKEN_SIZE = 51;

struct Route {
    std::uint32_t expires_at = 0;
    std::uint16_t port = 0;
    std::array<std::uint8_t, 16> address{};  // IPv6, or IPv4 mapped (::ffff:a.b.c.d)
};
Error seal_route_token(const Key& relay_key, const Nonce& nonce, const Route& route, Bytes& out);
Error open_route_token(const Key& relay_key, View token, Route& out);

// -- the reliability layer's body (13.3) and messages (13.4) --
constexpr std::size_t BODY_HEADER_SIZE = 9;
constexpr std::size_t MAX_MESSAGES = 64;
constexpr std::size_t MAX_MESSAGE_LENGTH = 8191;

struct BodyHeader {
    std::uint16_t sequence = 0;
    std::uint16_t ack = 0xffff;
    std::uint32_t ack_bits = 0;
    std::uint8_t ack_delay = 0;
};

struct Message {
    std::uint8_t channel = 0;   // 0 unreliable, 1 reliable ordered
    std::uint16_t id = 0;       // reliable id or snapshot sequence
    bool fragment = false;
    std::uint8_t index = 0;     // fragments only
    std::uint8_t last = 0;      // fragments only
    Bytes data;
};

Error encode_body(const BodyHeader& h, const std::vector<Message>& messages,
                  std::size_t max_body, Bytes& out);
Error decode_body(View body, std::size_t max_body, BodyHeader& h, std::vector<Message>& out);

// The slim layout of a body (13.3; slim payloads, 5.10): `slim_body` rewrites a
// body of at least its header (truncated otherwise), `body_of_slim` gives back
// the body it stands for (truncated, bad_field for reserved form bits or bit 5
// without bit 4, bad_size); decode_body judges the rest.
constexpr std::size_t SLIM_HEADER_SIZE = 6;
Error slim_body(View body, Bytes& out);
Error body_of_slim(View slim, Bytes& out);

}  // namespace vinom
