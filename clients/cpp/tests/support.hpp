// Shared helpers of the GoogleTest suite: vectors/protocol.json, read at run
// time from $VINOM_VECTORS or the path CMake compiled in.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "vinom/codec.hpp"

namespace vt {

// Ordered: a message's map keeps its keys' order, as its bytes do.
inline const nlohmann::ordered_json& vectors() {
    static const nlohmann::ordered_json data = [] {
        const char* env = std::getenv("VINOM_VECTORS");
        std::string path = env && *env ? env : VINOM_VECTORS;
        std::ifstream in(path);
        if (!in) throw std::runtime_error("cannot read " + path);
        std::stringstream text;
        text << in.rdbuf();
        return nlohmann::ordered_json::parse(text.str());
    }();
    return data;
}

// One vector of a group, by name.
inline const nlohmann::ordered_json& vector(const std::string& group, const std::string& name) {
    for (const auto& v : vectors().at(group).at("vectors"))
        if (v.at("name") == name) return v;
    throw std::runtime_error("no vector " + group + "." + name);
}

inline vinom::Bytes unhex(const std::string& text) {
    if (text.size() % 2) throw std::runtime_error("odd hex");
    vinom::Bytes out;
    for (std::size_t i = 0; i < text.size(); i += 2)
        out.push_back(static_cast<std::uint8_t>(std::stoul(text.substr(i, 2), nullptr, 16)));
    return out;
}

inline std::string hex(const vinom::Bytes& b) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (auto c : b) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

inline vinom::Key key(const std::string& text) {
    vinom::Bytes b = unhex(text);
    if (b.size() != 32) throw std::runtime_error("not a key");
    vinom::Key k{};
    std::copy(b.begin(), b.end(), k.begin());
    return k;
}

}  // namespace vt
