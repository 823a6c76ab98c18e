// The public part of a connect token (docs/protocol.md 4.3): the JSON the
// lobby sends in match_found, read with nlohmann-json; base64 per RFC 4648.
#include <nlohmann/json.hpp>

#include <cstring>

#include "vinom/codec.hpp"

namespace vinom {

Error base64_decode(std::string_view text, Bytes& out) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    if (text.size() % 4 != 0) return Error::bad_field;
    Bytes b;
    b.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        bool final_group = i + 4 == text.size();
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; ++j) {
            char c = text[i + static_cast<std::size_t>(j)];
            if (c == '=' && final_group && j >= 2) {
                v[j] = 0;
                ++pad;
            } else {
                if (pad) return Error::bad_field;  // data after padding
                v[j] = value(c);
                if (v[j] < 0) return Error::bad_field;
            }
        }
        std::uint32_t n = (std::uint32_t(v[0]) << 18) | (std::uint32_t(v[1]) << 12) |
                          (std::uint32_t(v[2]) << 6) | std::uint32_t(v[3]);
        b.push_back(static_cast<std::uint8_t>(n >> 16));
        if (pad < 2) b.push_back(static_cast<std::uint8_t>(n >> 8));
        if (pad < 1) b.push_back(static_cast<std::uint8_t>(n));
    }
    out = std::move(b);
    return Error::ok;
}

namespace {

constexpr std::uint64_t MAX_JSON_INT = (std::uint64_t{1} << 53) - 1;

bool get_uint(const nlohmann::json& j, const char* key, std::uint64_t max, std::uint64_t& out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return false;
    if (it->is_number_unsigned()) {
        out = it->get<std::uint64_t>();
    } else {
        std::int64_t v = it->get<std::int64_t>();
        if (v < 0) return false;
        out = static_cast<std::uint64_t>(v);
    }
    return out <= max;
}

bool get_string(const nlohmann::json& j, const char* key, std::string& out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return false;
    out = it->get<std::string>();
    return true;
}

bool get_b64(const nlohmann::json& j, const char* key, std::size_t size, std::uint8_t* out) {
    std::string text;
    Bytes b;
    if (!get_string(j, key, text) || base64_decode(text, b) != Error::ok || b.size() != size)
        return false;
    std::memcpy(out, b.data(), size);
    return true;
}

}  // namespace

Error parse_public_token(std::string_view json, PublicToken& out) {
    nlohmann::json j = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Error::bad_json;
    PublicToken t;
    std::uint64_t v = 0;
    if (!get_uint(j, "version", 0xffffffffu, v)) return Error::bad_json;
    t.version = static_cast<std::uint32_t>(v);
    if (!get_uint(j, "application_id", MAX_JSON_INT, t.application_id) ||
        !get_uint(j, "created_at", MAX_JSON_INT, t.created_at) ||
        !get_uint(j, "expires_at", MAX_JSON_INT, t.expires_at) ||
        !get_uint(j, "timeout_ms", 0xffffffffu, v) || v == 0 ||
        !get_string(j, "player_id", t.player_id) || !get_string(j, "match_id", t.match_id))
        return Error::bad_json;
    t.timeout_ms = static_cast<std::uint32_t>(v);
    auto hosts = j.find("hosts");
    if (hosts == j.end() || !hosts->is_array() || hosts->empty() || hosts->size() > 8)
        return Error::bad_json;
    for (const auto& h : *hosts) {
        Host host;
        if (!h.is_object() || !get_string(h, "host", host.host) || host.host.empty() ||
            host.host.size() > 255 || !get_uint(h, "port", 65535, v) || v == 0)
            return Error::bad_json;
        host.port = static_cast<std::uint16_t>(v);
        t.hosts.push_back(std::move(host));
    }
    t.sealed_token.resize(SEALED_TOKEN_SIZE);
    if (!get_b64(j, "nonce", t.nonce.size(), t.nonce.data()) ||
        !get_b64(j, "token", SEALED_TOKEN_SIZE, t.sealed_token.data()) ||
        !get_b64(j, "client_to_server_key", 32, t.client_to_server_key.data()) ||
        !get_b64(j, "server_to_client_key", 32, t.server_to_client_key.data()))
        return Error::bad_json;
    out = std::move(t);
    return Error::ok;
}

}  // namespace vinom
