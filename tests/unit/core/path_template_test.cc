#include "path_template.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::core {
namespace {

using ::testing::ElementsAre;
using ::testing::Optional;
using ::testing::Pair;

PathTemplate Parse(absl::string_view text) {
  absl::StatusOr<PathTemplate> parsed = PathTemplate::Parse(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return *parsed;
}

TEST(PathTemplateTest, MatchesLiteralsOnly) {
  PathTemplate t = Parse("/v1/router/models");
  EXPECT_THAT(t.Match("/v1/router/models"), Optional(ElementsAre()));
  EXPECT_EQ(t.Match("/v1/router/model"), std::nullopt);
  EXPECT_EQ(t.Match("/v1/router/models/x"), std::nullopt);
  EXPECT_EQ(t.Match("/v1/router"), std::nullopt);
}

TEST(PathTemplateTest, BindsSingleSegmentVariableDecoded) {
  PathTemplate t = Parse("/v1/agents/{name}");
  EXPECT_THAT(t.Match("/v1/agents/writer"), Optional(ElementsAre(Pair("name", "writer"))));
  EXPECT_THAT(t.Match("/v1/agents/a%20b"), Optional(ElementsAre(Pair("name", "a b"))));
  EXPECT_EQ(t.Match("/v1/agents/"), std::nullopt);
  EXPECT_EQ(t.Match("/v1/agents/a/b"), std::nullopt);
}

TEST(PathTemplateTest, BindsMultiSegmentPatternAndNestedFieldPath) {
  PathTemplate t = Parse("/v1/{book.name=shelves/*/books/*}");
  EXPECT_THAT(t.Match("/v1/shelves/s1/books/b2"),
              Optional(ElementsAre(Pair("book.name", "shelves/s1/books/b2"))));
  EXPECT_EQ(t.Match("/v1/shelves/s1/covers/b2"), std::nullopt);
}

TEST(PathTemplateTest, DoubleStarTakesTheRestAndKeepsEncodedSlash) {
  PathTemplate t = Parse("/v1/files/{path=**}");
  EXPECT_THAT(t.Match("/v1/files/a/b%2Fc"), Optional(ElementsAre(Pair("path", "a/b%2Fc"))));
}

TEST(PathTemplateTest, VerbMustMatch) {
  PathTemplate t = Parse("/v1/tasks/{id}:cancel");
  EXPECT_THAT(t.Match("/v1/tasks/t-1:cancel"), Optional(ElementsAre(Pair("id", "t-1"))));
  EXPECT_EQ(t.Match("/v1/tasks/t-1:signal"), std::nullopt);
  EXPECT_EQ(t.Match("/v1/tasks/t-1"), std::nullopt);
  PathTemplate plain = Parse("/v1/tasks/{id}");
  EXPECT_EQ(plain.Match("/v1/tasks/a/b"), std::nullopt);
}

TEST(PathTemplateTest, RejectsMalformedTemplatesWithTheReason) {
  EXPECT_EQ(PathTemplate::Parse("v1/x").status().message(),
            "path template \"v1/x\": must start with '/'");
  EXPECT_EQ(PathTemplate::Parse("/v1/{name").status().message(),
            "path template \"/v1/{name\": unclosed '{'");
  EXPECT_EQ(PathTemplate::Parse("/v1/{a-b}").status().message(),
            "path template \"/v1/{a-b}\": bad field path \"a-b\"");
  EXPECT_EQ(PathTemplate::Parse("/v1/**/x").status().message(),
            "path template \"/v1/**/x\": '**' must be the last segment");
  EXPECT_EQ(PathTemplate::Parse("/v1//x").status().message(),
            "path template \"/v1//x\": empty segment");
  EXPECT_EQ(PathTemplate::Parse("/v1/{a}/{a}").status().message(),
            "path template \"/v1/{a}/{a}\": variable {a} appears twice");
}

}  // namespace
}  // namespace flowork::core
