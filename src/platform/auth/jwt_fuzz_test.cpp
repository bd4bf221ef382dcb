// Feeds the JWT fuzz target seeds and deterministic mutations, so it runs in every test run.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace aether::platform::auth {
namespace {

int feed(const std::string& input) {
    return LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()),
                                  input.size());
}

const std::vector<std::string>& seeds() {
    static const std::vector<std::string> kSeeds = {
        "",
        ".",
        "..",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c3IiLCJleHAiOjF9.AAAA",
        "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
        "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl19.e30.AA",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA",
        "e30=.e30=.AA==",
        std::string(4096, 'A') + "." + std::string(4096, 'B') + ".C",
        "\xff\xfe.\x00\x01.\x7f",
    };
    return kSeeds;
}

TEST(JwtFuzzTarget, RejectsEverySeed) {
    for (const auto& seed : seeds()) EXPECT_EQ(feed(seed), 0) << seed.substr(0, 80);
}

TEST(JwtFuzzTarget, RejectsDeterministicMutations) {
    std::mt19937 random(20261128);
    for (int round = 0; round < 3000; ++round) {
        std::string input = seeds()[random() % seeds().size()];
        int edits = 1 + static_cast<int>(random() % 4);
        for (int edit = 0; edit < edits; ++edit) {
            switch (random() % 3) {
                case 0:
                    if (!input.empty())
                        input[random() % input.size()] = static_cast<char>(random());
                    break;
                case 1:
                    input.insert(input.begin() + static_cast<long>(random() % (input.size() + 1)),
                                 static_cast<char>(random()));
                    break;
                default:
                    if (!input.empty()) input.erase(random() % input.size(), 1);
            }
        }
        ASSERT_EQ(feed(input), 0);
    }
}

}  // namespace
}  // namespace aether::platform::auth
