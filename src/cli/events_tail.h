// `aether events tail`: live events of the bus for operators, one CloudEvents JSON per line.
#pragma once

#include <string>

namespace aether::platform::runtime {
class Runtime;
}

namespace aether::cli {

// Prints every event whose type matches `pattern` (a topic pattern: "task.*", "#") until SIGINT
// or SIGTERM. Returns the exit code.
int tail_events(platform::runtime::Runtime& runtime, const std::string& pattern);

}  // namespace aether::cli
