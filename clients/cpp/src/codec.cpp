// The packet layer of docs/protocol.md (sections 2 to 6): AES-256-GCM through
// OpenSSL's EVP interface, connect tokens, the nine packet types (0 to 8), the
// replay window.
#include "vinom/codec.hpp"

#include <openssl/evp.h>

#include <cstring>
#include <memory>

namespace vinom {

const char* error_name(Error e) {
    switch (e) {
        case Error::ok: return "ok";
        case Error::truncated: return "truncated";
        case Error::bad_size: return "bad_size";
        case Error::bad_type: return "bad_type";
        case Error::bad_field: return "bad_field";
        case Error::auth_failed: return "auth_failed";
        case Error::replayed: return "replayed";
        case Error::bad_json: return "bad_json";
        case Error::crypto: return "crypto";
        case Error::unexpected: return "unexpected";
        case Error::buffer_too_small: return "buffer_too_small";
        case Error::invalid_argument: return "invalid_argument";
        case Error::no_memory: return "no_memory";
        case Error::unknown_baseline: return "unknown_baseline";
        case Error::checksum_mismatch: return "checksum_mismatch";
        case Error::stale: return "stale";
        case Error::queue_full: return "queue_full";
        case Error::ended: return "ended";
    }
    return "unknown";
}

// -- little-endian integers (section 2) --
namespace {

void put_u16(Bytes& b, std::uint16_t v) {
    for (int i = 0; i < 2; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u32(Bytes& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u64(Bytes& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put(Bytes& b, View v) { b.insert(b.end(), v.data, v.data + v.size); }

std::uint64_t get_le(const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// A bounds-checked reader: every read fails once past the end, and stays failed.
struct Reader {
    View v;
    std::size_t at = 0;
    bool ok = true;
    bool need(std::size_t n) {
        if (!ok || v.size - at < n) ok = false;
        return ok;
    }
    std::uint64_t le(int n) {
        if (!need(static_cast<std::size_t>(n))) return 0;
        std::uint64_t x = get_le(v.data + at, n);
        at += static_cast<std::size_t>(n);
        return x;
    }
    View take(std::size_t n) {
        if (!need(n)) return {};
        View out = v.sub(at, n);
        at += n;
        return out;
    }
};

struct CtxFree {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

// OpenSSL takes int lengths; nothing here comes near, but a caller's view might.
bool fits_int(std::size_t n) { return n <= 0x7fffffff; }

const std::uint8_t kEmpty[1] = {0};
const std::uint8_t* nonnull(const std::uint8_t* p) { return p ? p : kEmpty; }

}  // namespace

Nonce make_nonce(std::uint32_t domain, std::uint64_t sequence) {
    Bytes b;
    put_u32(b, domain);
    put_u64(b, sequence);
    Nonce n{};
    std::memcpy(n.data(), b.data(), n.size());
    return n;
}

Error seal(const Key& key, const Nonce& nonce, View ad, View plaintext, Bytes& out) {
    if (!fits_int(ad.size) || !fits_int(plaintext.size)) return Error::bad_size;
    Ctx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return Error::crypto;
    int len = 0;
    // Sealed into a buffer of its own: `ad` or `plaintext` may point into `out`.
    Bytes sealed(plaintext.size + TAG_SIZE);
    std::uint8_t* dst = sealed.data();
    if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, nonnull(ad.data),
                          static_cast<int>(ad.size)) != 1 ||
        EVP_EncryptUpdate(ctx.get(), dst, &len, nonnull(plaintext.data),
                          static_cast<int>(plaintext.size)) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), dst + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(TAG_SIZE),
                            dst + plaintext.size) != 1) {
        return Error::crypto;
    }
    out.insert(out.end(), sealed.begin(), sealed.end());
    return Error::ok;
}

Error open(const Key& key, const Nonce& nonce, View ad, View sealed, Bytes& out) {
    if (sealed.size < TAG_SIZE) return Error::truncated;
    if (!fits_int(ad.size) || !fits_int(sealed.size)) return Error::bad_size;
    std::size_t n = sealed.size - TAG_SIZE;
    Bytes plain(n);
    std::array<std::uint8_t, TAG_SIZE> tag{};
    std::memcpy(tag.data(), sealed.data + n, TAG_SIZE);
    Ctx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return Error::crypto;
    int len = 0;
    std::uint8_t scratch[1];
    std::uint8_t* dst = n ? plain.data() : scratch;
    if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()) != 1 ||
        EVP_DecryptUpdate(ctx.get(), nullptr, &len, nonnull(ad.data),
                          static_cast<int>(ad.size)) != 1 ||
        EVP_DecryptUpdate(ctx.get(), dst, &len, nonnull(sealed.data), static_cast<int>(n)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(TAG_SIZE),
                            tag.data()) != 1) {
        return Error::crypto;
    }
    if (EVP_DecryptFinal_ex(ctx.get(), dst + len, &len) != 1) return Error::auth_failed;
    out = std::move(plain);
    return Error::ok;
}

// -- connect tokens (section 4) --

Error encode_private_token(const PrivateToken& t, Bytes& out) {
    auto bad_id = [](const std::string& s) { return s.empty() || s.size() > 64; };
    if (t.timeout_ms == 0 || bad_id(t.player_id) || bad_id(t.match_id) || t.hosts.empty() ||
        t.hosts.size() > 8 || t.user_data.size() > 256)
        return Error::bad_field;
    Bytes b;
    put_u64(b, t.created_at);
    put_u32(b, t.timeout_ms);
    put(b, t.client_to_server_key);
    put(b, t.server_to_client_key);
    b.push_back(static_cast<std::uint8_t>(t.player_id.size()));
    b.insert(b.end(), t.player_id.begin(), t.player_id.end());
    b.push_back(static_cast<std::uint8_t>(t.match_id.size()));
    b.insert(b.end(), t.match_id.begin(), t.match_id.end());
    b.push_back(static_cast<std::uint8_t>(t.hosts.size()));
    for (const Host& h : t.hosts) {
        if (h.host.empty() || h.host.size() > 255 || h.port == 0) return Error::bad_field;
        b.push_back(static_cast<std::uint8_t>(h.host.size()));
        b.insert(b.end(), h.host.begin(), h.host.end());
        put_u16(b, h.port);
    }
    put_u16(b, static_cast<std::uint16_t>(t.user_data.size()));
    put(b, t.user_data);
    if (b.size() > PRIVATE_TOKEN_SIZE) return Error::bad_size;
    b.resize(PRIVATE_TOKEN_SIZE, 0);
    out = std::move(b);
    return Error::ok;
}

Error decode_private_token(View data, PrivateToken& out) {
    if (data.size != PRIVATE_TOKEN_SIZE) return Error::bad_size;
    Reader r{data};
    PrivateToken t;
    t.created_at = r.le(8);
    t.timeout_ms = static_cast<std::uint32_t>(r.le(4));
    View k = r.take(32);
    if (r.ok) std::memcpy(t.client_to_server_key.data(), k.data, 32);
    k = r.take(32);
    if (r.ok) std::memcpy(t.server_to_client_key.data(), k.data, 32);
    auto text = [&r](std::size_t n) {
        View v = r.take(n);
        return r.ok ? std::string(reinterpret_cast<const char*>(v.data), v.size) : std::string();
    };
    std::size_t n = r.le(1);
    if (n < 1 || n > 64) return Error::bad_field;
    t.player_id = text(n);
    n = r.le(1);
    if (n < 1 || n > 64) return Error::bad_field;
    t.match_id = text(n);
    std::size_t hosts = r.le(1);
    if (hosts < 1 || hosts > 8) return Error::bad_field;
    for (std::size_t i = 0; i < hosts && r.ok; ++i) {
        Host h;
        n = r.le(1);
        if (n < 1) return Error::bad_field;
        h.host = text(n);
        h.port = static_cast<std::uint16_t>(r.le(2));
        if (r.ok && h.port == 0) return Error::bad_field;
        t.hosts.push_back(std::move(h));
    }
    n = r.le(2);
    if (n > 256) return Error::bad_field;
    t.user_data = r.take(n).bytes();
    if (!r.ok) return Error::truncated;
    for (std::size_t i = r.at; i < data.size; ++i)
        if (data.data[i] != 0) return Error::bad_field;
    out = std::move(t);
    return Error::ok;
}

Bytes token_ad(std::uint32_t version, std::uint64_t application_id, std::uint64_t expires_at) {
    Bytes b;
    put_u32(b, version);
    put_u64(b, application_id);
    put_u64(b, expires_at);
    return b;
}

// -- packets (section 5) --

Bytes encode_request(const PublicToken& t) {
    Bytes b;
    b.reserve(MAX_DATAGRAM);
    b.push_back(REQUEST);
    put(b, token_ad(t.version, t.application_id, t.expires_at));
    put(b, t.nonce);
    put(b, t.sealed_token);
    b.resize(MAX_DATAGRAM, 0);
    return b;
}

Error decode_request(View packet, Request& out) {
    if (packet.size < 1) return Error::truncated;
    if (packet.data[0] != REQUEST) return Error::bad_type;
    if (packet.size != MAX_DATAGRAM) return Error::bad_size;
    Reader r{packet, 1};
    Request q;
    q.version = static_cast<std::uint32_t>(r.le(4));
    q.application_id = r.le(8);
    q.expires_at = r.le(8);
    std::memcpy(q.nonce.data(), r.take(12).data, 12);
    q.sealed_token = r.take(SEALED_TOKEN_SIZE).bytes();
    for (std::size_t i = r.at; i < packet.size; ++i)
        if (packet.data[i] != 0) return Error::bad_field;
    out = std::move(q);
    return Error::ok;
}

Error read_header(View packet, std::uint8_t& type, std::uint64_t& sequence) {
    if (packet.size < HEADER_SIZE) return Error::truncated;
    type = packet.data[0];
    sequence = get_le(packet.data + 1, 8);
    return Error::ok;
}

namespace {

Bytes header(std::uint8_t type, std::uint64_t sequence) {
    Bytes b;
    b.push_back(type);
    put_u64(b, sequence);
    return b;
}

// The size each type may have (section 5's table); 0 bounds mean "any".
bool size_allowed(std::uint8_t type, std::size_t size) {
    switch (type) {
        case CHALLENGE:
        case RESPONSE:
            return size >= HEADER_SIZE + MIN_COOKIE + TAG_SIZE &&
                   size <= HEADER_SIZE + MAX_COOKIE + TAG_SIZE;
        case WELCOME: return size == 41;
        case DENIED: return size == 25;
        // 25 bytes, but a keepalive's or disconnect's plaintext is read past (5.8):
        // the offer of 5.9 is a keepalive of 26.
        case KEEPALIVE:
        case DISCONNECT:
        case PAYLOAD: return size >= 25 && size <= MAX_DATAGRAM;
        default: return false;
    }
}

std::uint32_t domain_of(std::uint8_t type) {
    return (type == CHALLENGE || type == DENIED) ? 1u : 0u;
}

// The common frame of every sealed packet: header || seal(key, nonce, header, plaintext).
Error seal_frame(std::uint8_t type, const Key& key, std::uint64_t sequence, View plaintext,
                 Bytes& out) {
    Bytes b = header(type, sequence);
    Error e = seal(key, make_nonce(domain_of(type), sequence), View(b), plaintext, b);
    if (e != Error::ok) return e;
    if (!size_allowed(type, b.size())) return Error::bad_size;
    out = std::move(b);
    return Error::ok;
}

Error open_frame(std::uint8_t expected, const Key& key, View packet, std::uint64_t& sequence,
                 Bytes& plaintext) {
    std::uint8_t type = 0;
    Error e = read_header(packet, type, sequence);
    if (e != Error::ok) return e;
    if (type != expected) return Error::bad_type;
    if (!size_allowed(type, packet.size)) return Error::bad_size;
    return open(key, make_nonce(domain_of(type), sequence), packet.sub(0, HEADER_SIZE),
                packet.sub(HEADER_SIZE, packet.size - HEADER_SIZE), plaintext);
}

}  // namespace

Error seal_challenge(const Key& s2c, std::uint64_t sequence, View cookie, Bytes& out) {
    return seal_frame(CHALLENGE, s2c, sequence, cookie, out);
}

Error open_challenge(const Key& s2c, View packet, std::uint64_t& sequence, Bytes& cookie) {
    return open_frame(CHALLENGE, s2c, packet, sequence, cookie);
}

Error seal_response(const Key& c2s, std::uint64_t sequence, View cookie, Bytes& out) {
    if (cookie.size < MIN_COOKIE || cookie.size > MAX_COOKIE) return Error::bad_size;
    Bytes b = header(RESPONSE, sequence);
    put(b, cookie);
    Bytes tag;
    Error e = seal(c2s, make_nonce(0, sequence), View(b), View(), tag);
    if (e != Error::ok) return e;
    put(b, tag);
    out = std::move(b);
    return Error::ok;
}

Error open_response(const Key& c2s, View packet, std::uint64_t& sequence, Bytes& cookie) {
    std::uint8_t type = 0;
    Error e = read_header(packet, type, sequence);
    if (e != Error::ok) return e;
    if (type != RESPONSE) return Error::bad_type;
    if (!size_allowed(type, packet.size)) return Error::bad_size;
    std::size_t ad = packet.size - TAG_SIZE;
    Bytes empty;
    e = open(c2s, make_nonce(0, sequence), packet.sub(0, ad), packet.sub(ad, TAG_SIZE), empty);
    if (e != Error::ok) return e;
    cookie = packet.sub(HEADER_SIZE, ad - HEADER_SIZE).bytes();
    return Error::ok;
}

Error seal_welcome(const Key& s2c, const Welcome& w, Bytes& out) {
    Bytes plain;
    put_u64(plain, w.session_id);
    std::uint64_t bits = 0;
    std::memcpy(&bits, &w.server_time, 8);
    put_u64(plain, bits);
    return seal_frame(WELCOME, s2c, w.sequence, View(plain), out);
}

Error open_welcome(const Key& s2c, View packet, Welcome& out) {
    Welcome w;
    Bytes plain;
    Error e = open_frame(WELCOME, s2c, packet, w.sequence, plain);
    if (e != Error::ok) return e;
    w.session_id = get_le(plain.data(), 8);
    std::uint64_t bits = get_le(plain.data() + 8, 8);
    std::memcpy(&w.server_time, &bits, 8);
    out = w;
    return Error::ok;
}

Error seal_packet(std::uint8_t type, const Key& key, std::uint64_t sequence, View plaintext,
                  Bytes& out) {
    if (type != DENIED && type != PAYLOAD && type != KEEPALIVE && type != DISCONNECT)
        return Error::bad_type;
    return seal_frame(type, key, sequence, plaintext, out);
}

Error open_packet(const Key& key, View packet, std::uint8_t& type, std::uint64_t& sequence,
                  Bytes& plaintext) {
    if (packet.size < 1) return Error::truncated;
    std::uint8_t t = packet.data[0];
    if (t != DENIED && t != PAYLOAD && t != KEEPALIVE && t != DISCONNECT) return Error::bad_type;
    Error e = open_frame(t, key, packet, sequence, plaintext);
    if (e == Error::ok) type = t;
    return e;
}

// -- short payloads (section 5.9) --

bool full_sequence(std::uint16_t low, std::uint64_t newest, std::uint64_t& out) {
    // d in [-32768, 32767]: (low - newest + 32768) mod 65536 - 32768.
    std::int64_t d = static_cast<std::int64_t>((low - (newest & 0xffff) + 0x8000) & 0xffff) - 0x8000;
    if (d < 0 && newest < static_cast<std::uint64_t>(-d)) return false;
    if (d > 0 && newest > UINT64_MAX - static_cast<std::uint64_t>(d)) return false;
    out = d < 0 ? newest - static_cast<std::uint64_t>(-d) : newest + static_cast<std::uint64_t>(d);
    return true;
}

Error seal_short_payload(const Key& key, std::uint64_t sequence, View plaintext, Bytes& out,
                         std::uint8_t type) {
    if (type != SHORT_PAYLOAD && type != SLIM_PAYLOAD) return Error::bad_type;
    // A slim body may be a byte longer than its body (all four ack bytes named).
    if (plaintext.size > MAX_BODY + (type == SLIM_PAYLOAD ? 1 : 0)) return Error::bad_size;
    Bytes ad = header(type, sequence);
    Bytes b{type, static_cast<std::uint8_t>(sequence & 0xff),
            static_cast<std::uint8_t>((sequence >> 8) & 0xff)};
    Error e = seal(key, make_nonce(0, sequence), View(ad), plaintext, b);
    if (e != Error::ok) return e;
    out = std::move(b);
    return Error::ok;
}

Error read_short_header(View packet, std::uint16_t& low) {
    if (packet.size < 1) return Error::truncated;
    if (packet.data[0] != SHORT_PAYLOAD && packet.data[0] != SLIM_PAYLOAD) return Error::bad_type;
    if (packet.size < MIN_SHORT_PAYLOAD) return Error::truncated;
    if (packet.size > MAX_DATAGRAM) return Error::bad_size;
    low = static_cast<std::uint16_t>(get_le(packet.data + 1, 2));
    return Error::ok;
}

Error open_short_payload(const Key& key, View packet, std::uint64_t sequence, Bytes& plaintext) {
    std::uint16_t low = 0;
    Error e = read_short_header(packet, low);
    if (e != Error::ok) return e;
    if ((sequence & 0xffff) != low) return Error::bad_field;
    Bytes ad = header(packet.data[0], sequence);
    return open(key, make_nonce(0, sequence), View(ad),
                packet.sub(SHORT_HEADER_SIZE, packet.size - SHORT_HEADER_SIZE), plaintext);
}

// -- route tokens (section 15) --

Error seal_route_token(const Key& relay_key, const Nonce& nonce, const Route& route, Bytes& out) {
    if (route.port == 0) return Error::bad_field;
    Bytes plain;
    put_u32(plain, route.expires_at);
    put_u16(plain, route.port);
    put(plain, route.address);
    Bytes b{1};  // the version, also the associated data
    put(b, nonce);
    Error e = seal(relay_key, nonce, View(b.data(), 1), View(plain), b);
    if (e != Error::ok) return e;
    out = std::move(b);
    return Error::ok;
}

Error open_route_token(const Key& relay_key, View token, Route& out) {
    if (token.size != ROUTE_TOKEN_SIZE) return Error::bad_size;
    if (token.data[0] != 1) return Error::bad_type;
    Nonce nonce{};
    std::memcpy(nonce.data(), token.data + 1, nonce.size());
    Bytes plain;
    Error e = open(relay_key, nonce, token.sub(0, 1), token.sub(13, ROUTE_TOKEN_SIZE - 13), plain);
    if (e != Error::ok) return e;
    Route r;
    r.expires_at = static_cast<std::uint32_t>(get_le(plain.data(), 4));
    r.port = static_cast<std::uint16_t>(get_le(plain.data() + 4, 2));
    std::memcpy(r.address.data(), plain.data() + 6, 16);
    if (r.port == 0) return Error::bad_field;
    out = r;
    return Error::ok;
}

// -- replay protection (section 6) --

void ReplayWindow::start(std::uint64_t sequence) {
    started_ = true;
    newest_ = sequence;
    bits_ = {};
    set(0);
}

bool ReplayWindow::check(std::uint64_t sequence) const {
    if (!started_ || sequence > newest_) return true;
    std::uint64_t back = newest_ - sequence;
    return back <= 255 && !get(back);
}

void ReplayWindow::accept(std::uint64_t sequence) {
    if (!started_) {
        start(sequence);
        return;
    }
    if (sequence > newest_) {
        std::uint64_t shift = sequence - newest_;
        if (shift >= 256) {
            bits_ = {};
        } else {
            // Shift the 256-bit map left by `shift` (towards older sequences).
            std::array<std::uint64_t, 4> moved{};
            std::size_t words = shift / 64, rest = shift % 64;
            for (std::size_t i = 3; i + 1 > words; --i) {
                std::uint64_t v = bits_[i - words] << rest;
                if (rest && i - words >= 1) v |= bits_[i - words - 1] >> (64 - rest);
                moved[i] = v;
                if (i == 0) break;
            }
            bits_ = moved;
        }
        newest_ = sequence;
        set(0);
    } else if (newest_ - sequence <= 255) {
        set(newest_ - sequence);
    }
}

}  // namespace vinom
