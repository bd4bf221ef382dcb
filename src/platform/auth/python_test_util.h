// Test helper: runs Debian's /usr/bin/python3 (PyJWT, bcrypt) to produce data made by real
// third-party implementations, for compatibility tests.
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace aether::platform::auth::testing {

// Runs `python3 -c script args...` and returns its stdout without the trailing newline.
// Arguments go through the shell in single quotes, so they must not contain one.
inline std::string run_python(const std::string& script,
                              const std::vector<std::string>& args = {}) {
    const auto quote = [](const std::string& s) {
        if (s.find('\'') != std::string::npos) throw std::invalid_argument("quote in argument");
        return "'" + s + "'";
    };
    std::string command = "/usr/bin/python3 -c " + quote(script);
    for (const auto& arg : args) command += " " + quote(arg);
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) throw std::runtime_error("popen failed");
    std::string out;
    char buffer[4096];
    std::size_t n = 0;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
    const int status = pclose(pipe);
    if (status != 0)
        throw std::runtime_error("python failed (" + std::to_string(status) + "): " + out);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

}  // namespace aether::platform::auth::testing
