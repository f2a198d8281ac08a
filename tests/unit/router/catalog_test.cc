#include "flowork/router/catalog.h"

#include "flowork/core/config_loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::ElementsAre;

v1::RouterConfig Config() {
  v1::RouterConfig config;
  absl::Status parsed = core::ParseConfigText(R"yaml(
providers: [{name: local, kind: openai, base_url: "http://127.0.0.1:8000/v1", zone: local}]
models:
  - {name: small, provider: local, context_window: 8192, capabilities: [chat]}
  - {name: embedder, provider: local, capabilities: [embeddings]}
routes:
  - {name: chat, candidates: [small], require: {capabilities: [chat]}}
)yaml",
                                              "test.yaml", &config);
  EXPECT_TRUE(parsed.ok()) << parsed;
  return config;
}

std::vector<std::string> Ids(const v1::ListModelsResponse& response) {
  std::vector<std::string> ids;
  for (const auto& m : response.models()) ids.push_back(m.id());
  return ids;
}

TEST(CatalogTest, ListsModelsThenRoutesInConfigOrder) {
  Catalog catalog(Config());
  v1::ListModelsResponse all = catalog.List({});
  EXPECT_THAT(Ids(all), ElementsAre("small", "embedder", "chat"));
  EXPECT_EQ(all.models(0).kind(), v1::ModelEntry::KIND_MODEL);
  EXPECT_EQ(all.models(0).context_window(), 8192u);
  EXPECT_EQ(all.models(2).kind(), v1::ModelEntry::KIND_ROUTE);
  EXPECT_THAT(all.models(2).candidates(), ElementsAre("small"));
}

TEST(CatalogTest, FiltersByEveryRequestedCapability) {
  Catalog catalog(Config());
  v1::ListModelsRequest request;
  request.add_capabilities("chat");
  EXPECT_THAT(Ids(catalog.List(request)), ElementsAre("small", "chat"));
  request.add_capabilities("vision");
  EXPECT_THAT(Ids(catalog.List(request)), ElementsAre());
}

}  // namespace
}  // namespace flowork::router
