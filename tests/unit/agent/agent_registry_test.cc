#include "flowork/agent/agent_registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

v1::AgentSpec Spec(std::string name, v1::AgentSpec::Kind kind = v1::AgentSpec::KIND_LLM) {
  v1::AgentSpec spec;
  spec.set_name(std::move(name));
  spec.set_kind(kind);
  return spec;
}

TEST(AgentRegistryTest, ListsByNameAndFiltersByKind) {
  auto registry = AgentRegistry::Create(
      {Spec("writer"), Spec("coder", v1::AgentSpec::KIND_NATIVE), Spec("analyst")});
  ASSERT_TRUE(registry.ok()) << registry.status();
  std::vector<v1::AgentSpec> all = (*registry)->List(v1::AgentSpec::KIND_UNSPECIFIED);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].name(), "analyst");
  EXPECT_EQ(all[1].name(), "coder");
  EXPECT_EQ(all[2].name(), "writer");
  EXPECT_EQ(all[0].version(), 1u);
  std::vector<v1::AgentSpec> native = (*registry)->List(v1::AgentSpec::KIND_NATIVE);
  ASSERT_EQ(native.size(), 1u);
  EXPECT_EQ(native[0].name(), "coder");
}

TEST(AgentRegistryTest, GetUnknownAgentIsNotFound) {
  auto registry = AgentRegistry::Create({Spec("writer")});
  ASSERT_TRUE(registry.ok());
  EXPECT_TRUE((*registry)->Get("writer").ok());
  absl::StatusOr<v1::AgentSpec> missing = (*registry)->Get("ghost");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "agent \"ghost\" not found");
}

TEST(AgentRegistryTest, RejectsDuplicateAndMalformedNames) {
  auto duplicate = AgentRegistry::Create({Spec("a"), Spec("a")});
  EXPECT_EQ(duplicate.status().message(), "agents[1].name: duplicate agent \"a\"");
  auto malformed = AgentRegistry::Create({Spec("Bad Name")});
  EXPECT_EQ(malformed.status().message(),
            "agents[0].name: \"Bad Name\" is not a valid name (use [a-z0-9-]+)");
}

TEST(AgentRegistryTest, AddRegistersOnceAndRejectsTakenOrBadNames) {
  auto registry = AgentRegistry::Create({Spec("writer")});
  ASSERT_TRUE(registry.ok());
  absl::StatusOr<v1::AgentSpec> added = (*registry)->Add(Spec("reviewer"));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->version(), 1u);
  EXPECT_TRUE((*registry)->Get("reviewer").ok());
  EXPECT_EQ((*registry)->Add(Spec("writer")).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*registry)->Add(Spec("")).status().message(),
            "agent.name: \"\" is not a valid name (use [a-z0-9-]+)");
  EXPECT_EQ((*registry)->List(v1::AgentSpec::KIND_UNSPECIFIED).size(), 2u);
}

}  // namespace
}  // namespace flowork::agent
