// Feeds the body fuzz target seeds and deterministic mutations, so it runs in every test run.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace aether::platform::json {
namespace {

int feed(const std::string& input) {
    return LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()),
                                  input.size());
}

const std::vector<std::string>& seeds() {
    static const std::vector<std::string> kSeeds = {
        "",
        "{}",
        "[]",
        "null",
        R"({"title":"t","items":[]})",
        R"({"title":"t","items":[{"name":"a","count":3,"levels":["low","high"],"scores":{"x":1.5}}],"flag":null,"port":8080,"extra":{"k":[1,2,{"z":null}]}})",
        R"({"title":1,"items":[{"name":null,"levels":["nope"],"count":1e99}]})",
        R"({"title":"\u0000\ud83d\ude00","items":[],"port":65536})",
        std::string("{\"title\":\"a\0b\"}", 15),
        "{\"title\":\"\xff\"}",
        std::string(200, '['),
        "[1e999]",
        "{\"a\":1,\"a\":2}",
        "123456789012345678901234567890",
    };
    return kSeeds;
}

TEST(BodyFuzzTarget, AcceptsEverySeed) {
    for (const std::string& seed : seeds()) EXPECT_EQ(feed(seed), 0);
}

TEST(BodyFuzzTarget, SurvivesDeterministicMutations) {
    std::mt19937 random(20240601);
    using namespace std::string_literals;
    const std::string alphabet = "{}[]\":,0123456789.eE-+ \\untrfalsu\x00\x7f\xc3\xa9\xff"s;
    for (int round = 0; round < 3000; ++round) {
        std::string input = seeds()[random() % seeds().size()];
        const int edits = 1 + static_cast<int>(random() % 4);
        for (int e = 0; e < edits; ++e) {
            const char c = alphabet[random() % alphabet.size()];
            const std::size_t at = input.empty() ? 0 : random() % (input.size() + 1);
            switch (random() % 3) {
                case 0:
                    input.insert(at, 1, c);
                    break;
                case 1:
                    if (at < input.size()) input.erase(at, 1);
                    break;
                default:
                    if (at < input.size()) input[at] = c;
                    break;
            }
        }
        ASSERT_EQ(feed(input), 0);
    }
}

}  // namespace
}  // namespace aether::platform::json
