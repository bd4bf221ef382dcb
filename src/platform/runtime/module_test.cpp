// Unit tests for the module registry and the resolution of --target specs into module names.
#include "platform/runtime/module.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

namespace aether::platform::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class FakeModule final : public Module {
  public:
    explicit FakeModule(std::string name) : name_(std::move(name)) {}
    std::string_view name() const override { return name_; }
    std::string_view base_path() const override { return "/fake"; }
    boost::asio::awaitable<void> start(ModuleContext&) override { co_return; }

  private:
    std::string name_;
};

ModuleFactory factory_for(std::string name, int* created = nullptr) {
    return [name, created] {
        if (created) ++*created;
        return std::make_unique<FakeModule>(name);
    };
}

// The process-wide registry holds gateway, security and tasks in this binary; nothing else.
class ResolveTargetsTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        auto& registry = ModuleRegistry::instance();
        registry.add("gateway", factory_for("gateway"));
        registry.add("security", factory_for("security"));
        registry.add("tasks", factory_for("tasks"));
    }
};

TEST(ModuleRegistryTest, AddHasCreateAndNames) {
    ModuleRegistry registry;
    EXPECT_FALSE(registry.has("tasks"));
    EXPECT_EQ(registry.create("tasks"), nullptr);
    int created = 0;
    registry.add("tasks", factory_for("tasks", &created));
    registry.add("ai", factory_for("ai"));
    EXPECT_TRUE(registry.has("tasks"));
    EXPECT_FALSE(registry.has("task"));
    auto first = registry.create("tasks");
    auto second = registry.create("tasks");
    ASSERT_NE(first, nullptr);
    ASSERT_NE(second, nullptr);
    EXPECT_NE(first.get(), second.get());
    EXPECT_EQ(created, 2);
    EXPECT_EQ(first->name(), "tasks");
    EXPECT_THAT(registry.names(), ElementsAre("ai", "tasks"));
}

TEST(ModuleRegistryTest, AddingTheSameNameReplacesTheFactory) {
    ModuleRegistry registry;
    registry.add("tasks", factory_for("old"));
    registry.add("tasks", factory_for("new"));
    EXPECT_EQ(registry.create("tasks")->name(), "new");
    EXPECT_EQ(registry.names().size(), 1u);
}

TEST(KnownTargetsTest, ListsEveryTargetAndAllCoversTheServices) {
    const auto& targets = known_targets();
    std::vector<std::string> names;
    for (const auto& target : targets) names.push_back(target.name);
    EXPECT_THAT(names, ElementsAre("gateway", "security", "tasks", "analytics", "ai", "code",
                                   "integrations", "all"));
    auto all = std::find_if(targets.begin(), targets.end(),
                            [](const TargetInfo& info) { return info.name == "all"; });
    ASSERT_NE(all, targets.end());
    EXPECT_THAT(all->modules, ElementsAre("gateway", "security", "tasks", "analytics", "ai", "code",
                                          "integrations"));
    for (const auto& target : targets) EXPECT_FALSE(target.description.empty()) << target.name;
}

TEST_F(ResolveTargetsTest, SingleRegisteredTarget) {
    std::string error;
    EXPECT_THAT(resolve_targets("security", error), ElementsAre("security"));
    EXPECT_TRUE(error.empty());
}

TEST_F(ResolveTargetsTest, UnknownTargetIsAnErrorNamingIt) {
    std::string error;
    EXPECT_TRUE(resolve_targets("bogus", error).empty());
    EXPECT_THAT(error, HasSubstr("unknown target \"bogus\""));
    EXPECT_THAT(error, HasSubstr("--list-targets"));
}

TEST_F(ResolveTargetsTest, UnknownTargetAfterAGoodOneFailsTheWholeSpec) {
    std::string error;
    EXPECT_TRUE(resolve_targets("security,bogus", error).empty());
    EXPECT_THAT(error, HasSubstr("\"bogus\""));
}

TEST_F(ResolveTargetsTest, KnownTargetWithoutItsModuleNamesTheModule) {
    std::string error;
    EXPECT_TRUE(resolve_targets("analytics", error).empty());
    EXPECT_THAT(error, HasSubstr("target \"analytics\""));
    EXPECT_THAT(error, HasSubstr("module \"analytics\""));
}

TEST_F(ResolveTargetsTest, AllKeepsOnlyRegisteredModulesInOrder) {
    std::string error;
    EXPECT_THAT(resolve_targets("all", error), ElementsAre("gateway", "security", "tasks"));
    EXPECT_TRUE(error.empty());
}

TEST_F(ResolveTargetsTest, ListsAreDeduplicatedInFirstSeenOrder) {
    std::string error;
    EXPECT_THAT(resolve_targets("tasks,security,tasks", error), ElementsAre("tasks", "security"));
    EXPECT_THAT(resolve_targets("security,all", error),
                ElementsAre("security", "gateway", "tasks"));
    EXPECT_TRUE(error.empty());
}

TEST_F(ResolveTargetsTest, EmptyItemsAreSkipped) {
    std::string error;
    EXPECT_THAT(resolve_targets(",gateway,,security,", error), ElementsAre("gateway", "security"));
    EXPECT_TRUE(error.empty());
}

TEST_F(ResolveTargetsTest, EmptySpecIsAnError) {
    std::string error;
    EXPECT_TRUE(resolve_targets("", error).empty());
    EXPECT_EQ(error, "no target given");
    error.clear();
    EXPECT_TRUE(resolve_targets(",,", error).empty());
    EXPECT_EQ(error, "no target given");
}

}  // namespace
}  // namespace aether::platform::runtime
