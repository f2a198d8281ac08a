#include "flowork/core/config_loader.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "flowork/router/v1/config.pb.h"
#include "flowork/test/v1/test.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace flowork::core {
namespace {

using ::flowork::router::v1::RouterConfig;
using ::flowork::test::v1::Everything;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

// Resolves `${NAME}` from a fixed table instead of the process environment.
ConfigLoadOptions FakeEnv(std::map<std::string, std::string> variables) {
  ConfigLoadOptions options;
  options.lookup_env =
      [variables = std::move(variables)](std::string_view name) -> std::optional<std::string> {
    auto it = variables.find(std::string(name));
    if (it == variables.end()) return std::nullopt;
    return it->second;
  };
  return options;
}

Everything ParseEverything(std::string_view text) {
  Everything message;
  absl::Status status = ParseConfigText(text, "test.yaml", &message);
  EXPECT_TRUE(status.ok()) << status;
  return message;
}

// The error message of parsing `text` into Everything, labelled test.yaml.
std::string EverythingError(std::string_view text) {
  Everything message;
  absl::Status status = ParseConfigText(text, "test.yaml", &message);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

constexpr std::string_view kExampleRouterConfig = R"(
listen: {http: 127.0.0.1:2402, grpc: 127.0.0.1:2403}
auth: {mode: keys}
providers:
  - name: local-vllm
    kind: openai
    base_url: http://127.0.0.1:8000/v1
    api_key_env: VLLM_API_KEY
    zone: local
    max_concurrency: 64
    timeouts: {connect: 2s, first_byte: 30s, first_token: 30s, idle: 60s, total: 600s}
  - name: openai
    kind: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    zone: remote
models:
  - name: llama-3.1-8b
    provider: local-vllm
    upstream_model: meta-llama/Llama-3.1-8B-Instruct
    context_window: 131072
    capabilities: [chat, tools, json, prefill]
    price: {input_per_mtok: 0, output_per_mtok: 0}
  - name: gpt-4o-mini
    provider: openai
    context_window: 128000
    capabilities: [chat, tools, json, vision]
    price: {input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075}
routes:
  - name: chat
    candidates: [llama-3.1-8b, gpt-4o-mini]
    objective: least_latency
    require: {capabilities: [chat], zones: [local, remote]}
    retry: {same_endpoint: 1, backoff: 250ms, max_wait: 5s}
    fallback: {max_attempts: 3, continue_on_cut: true}
    hedge: {after: 800ms}
keys:
  - name: team-a
    sha256: "0000000000000000000000000000000000000000000000000000000000000000"
    tenant: a
    allow: [chat]
    zones: [local]
    limits: {rpm: 600, tpm: 200000}
    budget: {usd_per_day: 20}
audit: {path: ./flowork-audit.db}
)";

TEST(ConfigLoaderTest, LoadsTheExampleRouterConfig) {
  RouterConfig config;
  ASSERT_TRUE(ParseConfigText(kExampleRouterConfig, "router.yaml", &config).ok());

  EXPECT_EQ(config.listen().http(), "127.0.0.1:2402");
  EXPECT_EQ(config.listen().grpc(), "127.0.0.1:2403");
  EXPECT_EQ(config.auth().mode(), router::v1::AuthConfig::MODE_KEYS);

  ASSERT_EQ(config.providers_size(), 2);
  const router::v1::Provider& vllm = config.providers(0);
  EXPECT_EQ(vllm.name(), "local-vllm");
  EXPECT_EQ(vllm.kind(), router::v1::Provider::KIND_OPENAI);
  EXPECT_EQ(vllm.base_url(), "http://127.0.0.1:8000/v1");
  EXPECT_EQ(vllm.max_concurrency(), 64u);
  EXPECT_EQ(vllm.timeouts().connect().seconds(), 2);
  EXPECT_EQ(vllm.timeouts().total().seconds(), 600);
  EXPECT_FALSE(config.providers(1).has_timeouts());

  ASSERT_EQ(config.models_size(), 2);
  EXPECT_EQ(config.models(0).context_window(), 131072u);
  EXPECT_THAT(config.models(0).capabilities(),
              testing::ElementsAre("chat", "tools", "json", "prefill"));
  EXPECT_TRUE(config.models(0).has_price());
  EXPECT_DOUBLE_EQ(config.models(1).price().input_per_mtok(), 0.15);
  EXPECT_DOUBLE_EQ(config.models(1).price().output_per_mtok(), 0.60);
  EXPECT_DOUBLE_EQ(config.models(1).price().cached_input_per_mtok(), 0.075);

  ASSERT_EQ(config.routes_size(), 1);
  const router::v1::Route& route = config.routes(0);
  EXPECT_EQ(route.objective(), router::v1::Route::OBJECTIVE_LEAST_LATENCY);
  EXPECT_THAT(route.candidates(), testing::ElementsAre("llama-3.1-8b", "gpt-4o-mini"));
  EXPECT_THAT(route.require().zones(), testing::ElementsAre("local", "remote"));
  EXPECT_EQ(route.retry().same_endpoint(), 1u);
  EXPECT_EQ(route.retry().backoff().seconds(), 0);
  EXPECT_EQ(route.retry().backoff().nanos(), 250'000'000);
  EXPECT_EQ(route.retry().max_wait().seconds(), 5);
  EXPECT_EQ(route.fallback().max_attempts(), 3u);
  EXPECT_TRUE(route.fallback().continue_on_cut());
  EXPECT_EQ(route.hedge().after().nanos(), 800'000'000);

  ASSERT_EQ(config.keys_size(), 1);
  const router::v1::ApiKey& key = config.keys(0);
  EXPECT_EQ(key.sha256(), std::string(64, '0'));
  EXPECT_EQ(key.tenant(), "a");
  EXPECT_EQ(key.limits().rpm(), 600u);
  EXPECT_EQ(key.limits().tpm(), 200000u);
  EXPECT_DOUBLE_EQ(key.budget().usd_per_day(), 20.0);
  EXPECT_EQ(config.audit().path(), "./flowork-audit.db");
}

TEST(ConfigLoaderTest, RejectsUnknownEnumValueWithLineAndPath) {
  constexpr std::string_view kText = R"(routes:
  - name: first
    objective: priority
  - name: second
    objective: least_busy
  - name: third
    candidates: [a, b]
    objective: fastest
    retry: {backoff: 1s}
)";
  RouterConfig config;
  absl::Status status = ParseConfigText(kText, "router.yaml", &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "router.yaml:8: routes[2].objective: unknown value \"fastest\"");
}

TEST(ConfigLoaderTest, ParsesEveryScalarType) {
  Everything message = ParseEverything(R"(
text: hello world
i32: -2147483648
i64: -9223372036854775808
u32: 4294967295
u64: 18446744073709551615
real: -2.5e3
small_real: 0.25
flag: true
blob: "raw \x01 bytes"
)");
  EXPECT_EQ(message.text(), "hello world");
  EXPECT_EQ(message.i32(), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(message.i64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(message.u32(), std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(message.u64(), std::numeric_limits<uint64_t>::max());
  EXPECT_DOUBLE_EQ(message.real(), -2500.0);
  EXPECT_FLOAT_EQ(message.small_real(), 0.25f);
  EXPECT_TRUE(message.flag());
  EXPECT_EQ(message.blob(), "raw \x01 bytes");
}

TEST(ConfigLoaderTest, ParsesFalseAndQuotedNumbers) {
  Everything message = ParseEverything("flag: false\ni32: \"42\"\ntext: 17\n");
  EXPECT_FALSE(message.flag());
  EXPECT_EQ(message.i32(), 42);
  EXPECT_EQ(message.text(), "17");
}

TEST(ConfigLoaderTest, ParsesNestedAndRepeatedMessages) {
  Everything message = ParseEverything(R"(
inner:
  name: top
  count: 3
  tags: [a, b]
inners:
  - name: first
    tags:
      - x
  - {name: second, count: 2}
numbers: [1, -2, 3]
)");
  EXPECT_EQ(message.inner().name(), "top");
  EXPECT_EQ(message.inner().count(), 3);
  EXPECT_THAT(message.inner().tags(), testing::ElementsAre("a", "b"));
  ASSERT_EQ(message.inners_size(), 2);
  EXPECT_EQ(message.inners(0).name(), "first");
  EXPECT_THAT(message.inners(0).tags(), testing::ElementsAre("x"));
  EXPECT_EQ(message.inners(1).count(), 2);
  EXPECT_THAT(message.numbers(), testing::ElementsAre(1, -2, 3));
}

TEST(ConfigLoaderTest, EmptyMappingSetsNestedMessage) {
  Everything message = ParseEverything("inner: {}\n");
  EXPECT_TRUE(message.has_inner());
}

TEST(ConfigLoaderTest, ParsesMaps) {
  Everything message = ParseEverything(R"(
counts: {a: 1, b: -2}
inner_by_name:
  x: {count: 5}
  "y z": {tags: [t]}
)");
  EXPECT_EQ(message.counts_size(), 2);
  EXPECT_EQ(message.counts().at("a"), 1);
  EXPECT_EQ(message.counts().at("b"), -2);
  EXPECT_EQ(message.inner_by_name().at("x").count(), 5);
  EXPECT_THAT(message.inner_by_name().at("y z").tags(), testing::ElementsAre("t"));
}

TEST(ConfigLoaderTest, AcceptsJsonNamesOfFields) {
  Everything message = ParseEverything("smallReal: 1.5\ninnerByName: {k: {name: n}}\n");
  EXPECT_FLOAT_EQ(message.small_real(), 1.5f);
  EXPECT_EQ(message.inner_by_name().at("k").name(), "n");
}

TEST(ConfigLoaderTest, AcceptsEnumFullNameShortNameAndAnyCase) {
  EXPECT_EQ(ParseEverything("color: COLOR_LIGHT_BLUE").color(), Everything::COLOR_LIGHT_BLUE);
  EXPECT_EQ(ParseEverything("color: light_blue").color(), Everything::COLOR_LIGHT_BLUE);
  EXPECT_EQ(ParseEverything("color: Light_Blue").color(), Everything::COLOR_LIGHT_BLUE);
  EXPECT_EQ(ParseEverything("color: RED").color(), Everything::COLOR_RED);
  EXPECT_EQ(ParseEverything("color: color_red").color(), Everything::COLOR_RED);
  EXPECT_THAT(ParseEverything("colors: [red, COLOR_LIGHT_BLUE]").colors(),
              testing::ElementsAre(Everything::COLOR_RED, Everything::COLOR_LIGHT_BLUE));
}

TEST(ConfigLoaderTest, RejectsIntegerAndUnknownEnumValues) {
  EXPECT_EQ(EverythingError("color: 1"), "test.yaml:1: color: unknown value \"1\"");
  EXPECT_EQ(EverythingError("colors: [red, blue]"),
            "test.yaml:1: colors[1]: unknown value \"blue\"");
}

struct DurationCase {
  std::string text;
  int64_t seconds;
  int32_t nanos;
};

TEST(ConfigLoaderTest, ParsesDurationInEveryUnit) {
  const DurationCase cases[] = {
      {"10ns", 0, 10}, {"100us", 0, 100'000}, {"250ms", 0, 250'000'000}, {"2s", 2, 0},
      {"1.5m", 90, 0}, {"1h", 3600, 0},       {"0.5s", 0, 500'000'000},  {"0s", 0, 0},
  };
  for (const DurationCase& c : cases) {
    SCOPED_TRACE(c.text);
    Everything message = ParseEverything("timeout: " + c.text);
    EXPECT_TRUE(message.has_timeout());
    EXPECT_EQ(message.timeout().seconds(), c.seconds);
    EXPECT_EQ(message.timeout().nanos(), c.nanos);
  }
}

TEST(ConfigLoaderTest, RejectsBadDurations) {
  EXPECT_EQ(EverythingError("timeout: 2"),
            "test.yaml:1: timeout: duration \"2\" needs a unit "
            "(ns, us, ms, s, m or h)");
  EXPECT_EQ(EverythingError("timeout: -1s"), "test.yaml:1: timeout: negative duration \"-1s\"");
  for (const char* bad : {"abc", "5 s", "1x", "s", "inf", "1.2.3s"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(EverythingError(std::string("timeout: ") + bad),
                HasSubstr("timeout: invalid duration"));
  }
  EXPECT_THAT(EverythingError("timeout: {seconds: 1}"), HasSubstr("timeout: expected a duration"));
}

TEST(ConfigLoaderTest, RejectsTwoMembersOfOneOneof) {
  EXPECT_EQ(EverythingError("choice_text: a\nchoice_number: 2\n"),
            "test.yaml:2: choice_number: conflicts with choice_text "
            "(both in oneof choice)");
}

TEST(ConfigLoaderTest, AcceptsOneOneofMemberBesideANullOne) {
  Everything message = ParseEverything("choice_text: ~\nchoice_number: 2\n");
  EXPECT_EQ(message.choice_case(), Everything::kChoiceNumber);
  EXPECT_EQ(message.choice_number(), 2);
}

TEST(ConfigLoaderTest, RejectsUnknownFieldNamingItAndItsLine) {
  EXPECT_EQ(EverythingError("text: a\ninner:\n  name: b\n  nmae: c\n"),
            "test.yaml:4: inner.nmae: unknown field");
  EXPECT_EQ(EverythingError("colour: red"), "test.yaml:1: colour: unknown field");
}

TEST(ConfigLoaderTest, RejectsDuplicateKeys) {
  EXPECT_EQ(EverythingError("text: a\ntext: b\n"), "test.yaml:2: text: duplicate field");
  EXPECT_EQ(EverythingError("small_real: 1\nsmallReal: 2\n"),
            "test.yaml:2: smallReal: duplicate field");
  EXPECT_EQ(EverythingError("counts:\n  a: 1\n  a: 2\n"),
            "test.yaml:3: counts[\"a\"]: duplicate key");
}

TEST(ConfigLoaderTest, RejectsWrongTypesNamingFieldAndExpectedType) {
  EXPECT_EQ(EverythingError("text: {a: 1}"), "test.yaml:1: text: expected string, got a mapping");
  EXPECT_EQ(EverythingError("i32: abc"), "test.yaml:1: i32: expected int32, got \"abc\"");
  EXPECT_EQ(EverythingError("real: [1]"), "test.yaml:1: real: expected double, got a sequence");
  EXPECT_EQ(EverythingError("flag: yes"),
            "test.yaml:1: flag: expected bool (true or false), got \"yes\"");
  EXPECT_EQ(EverythingError("inner: 5"), "test.yaml:1: inner: expected a mapping, got \"5\"");
  EXPECT_EQ(EverythingError("numbers: 5"), "test.yaml:1: numbers: expected a sequence, got \"5\"");
  EXPECT_EQ(EverythingError("counts: [1]"),
            "test.yaml:1: counts: expected a mapping, got a sequence");
  EXPECT_EQ(EverythingError("color: [red]"),
            "test.yaml:1: color: expected a Color value, got a sequence");
  EXPECT_EQ(EverythingError("numbers: [1, ~]"),
            "test.yaml:1: numbers[1]: expected int32, got null");
}

TEST(ConfigLoaderTest, ErrorPathIndexesNestedSequences) {
  RouterConfig config;
  absl::Status status = ParseConfigText("models:\n  - name: m\n    capabilities: [chat, {a: b}]\n",
                                        "router.yaml", &config);
  EXPECT_EQ(status.message(),
            "router.yaml:3: models[0].capabilities[1]: expected string, "
            "got a mapping");
}

TEST(ConfigLoaderTest, ErrorPathNamesMapEntry) {
  RouterConfig config;
  absl::Status status =
      ParseConfigText("routes:\n  - name: r\n    weights: {a: 1, b: -1}\n", "router.yaml", &config);
  EXPECT_EQ(status.message(),
            "router.yaml:3: routes[0].weights[\"b\"]: -1 is out of range for "
            "uint32");
}

TEST(ConfigLoaderTest, ChecksIntegerRanges) {
  EXPECT_EQ(EverythingError("i32: 2147483648"),
            "test.yaml:1: i32: 2147483648 is out of range for int32");
  EXPECT_EQ(EverythingError("i64: 9223372036854775808"),
            "test.yaml:1: i64: 9223372036854775808 is out of range for int64");
  EXPECT_EQ(EverythingError("u32: 4294967296"),
            "test.yaml:1: u32: 4294967296 is out of range for uint32");
  EXPECT_EQ(EverythingError("u64: -1"), "test.yaml:1: u64: -1 is out of range for uint64");
  EXPECT_EQ(EverythingError("i32: 1.5"), "test.yaml:1: i32: expected int32, got \"1.5\"");
  EXPECT_EQ(EverythingError("small_real: 1e39"),
            "test.yaml:1: small_real: 1e39 is out of range for float");
}

TEST(ConfigLoaderTest, NullLeavesFieldUnset) {
  Everything message = ParseEverything("text: ~\ninner: null\ntimeout:\nnumbers: ~\n");
  EXPECT_EQ(message.text(), "");
  EXPECT_FALSE(message.has_inner());
  EXPECT_FALSE(message.has_timeout());
  EXPECT_EQ(message.numbers_size(), 0);
}

TEST(ConfigLoaderTest, QuotedNullIsAString) {
  EXPECT_EQ(ParseEverything("text: \"null\"").text(), "null");
}

TEST(ConfigLoaderTest, SubstitutesEnvironmentVariablesInStringsAndBytes) {
  Everything message;
  absl::Status status = ParseConfigText(
      "text: ${HOST}:${PORT}/v1\nblob: key-${KEY}\n"
      "inner_by_name: {a: {name: \"${HOST}\"}}\n",
      "test.yaml", &message,
      FakeEnv({{"HOST", "example.com"}, {"PORT", "8080"}, {"KEY", "s3cr3t"}}));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(message.text(), "example.com:8080/v1");
  EXPECT_EQ(message.blob(), "key-s3cr3t");
  EXPECT_EQ(message.inner_by_name().at("a").name(), "example.com");
}

TEST(ConfigLoaderTest, UnsetEnvironmentVariableIsAnErrorNamingIt) {
  Everything message;
  absl::Status status = ParseConfigText("text: a\ninner: {name: \"${MISSING}\"}\n", "test.yaml",
                                        &message, FakeEnv({}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "test.yaml:2: inner.name: environment variable MISSING is not set");
}

TEST(ConfigLoaderTest, DoubleDollarIsALiteralReference) {
  Everything message;
  ASSERT_TRUE(
      ParseConfigText("text: cost $5, $${HOME} and $$x", "test.yaml", &message, FakeEnv({})).ok());
  EXPECT_EQ(message.text(), "cost $5, ${HOME} and $$x");
}

TEST(ConfigLoaderTest, RejectsUnterminatedReference) {
  Everything message;
  absl::Status status = ParseConfigText("text: ${OPEN", "test.yaml", &message, FakeEnv({}));
  EXPECT_THAT(status.message(), HasSubstr("test.yaml:1: text: unterminated"));
}

TEST(ConfigLoaderTest, DoesNotSubstituteInMapKeys) {
  Everything message;
  ASSERT_TRUE(ParseConfigText("counts: {\"${A}\": 1}", "test.yaml", &message, FakeEnv({})).ok());
  EXPECT_EQ(message.counts().at("${A}"), 1);
}

TEST(ConfigLoaderTest, DefaultLookupReadsProcessEnvironment) {
  ASSERT_EQ(setenv("FLOWORK_CONFIG_LOADER_TEST_VAR", "from-env", 1), 0);
  Everything message;
  ASSERT_TRUE(
      ParseConfigText("text: ${FLOWORK_CONFIG_LOADER_TEST_VAR}", "test.yaml", &message).ok());
  EXPECT_EQ(message.text(), "from-env");
  unsetenv("FLOWORK_CONFIG_LOADER_TEST_VAR");
}

TEST(ConfigLoaderTest, JsonInputGivesTheSameMessageAsYaml) {
  Everything from_yaml = ParseEverything(R"(
text: hi
u64: 7
real: 0.5
flag: true
color: red
inner: {name: n, tags: [a]}
inners: [{count: 1}]
counts: {a: 1}
timeout: 250ms
choice_number: 4
)");
  Everything from_json = ParseEverything(R"({
  "text": "hi",
  "u64": 7,
  "real": 0.5,
  "flag": true,
  "color": "COLOR_RED",
  "inner": {"name": "n", "tags": ["a"]},
  "inners": [{"count": 1}],
  "counts": {"a": 1},
  "timeout": "0.25s",
  "choiceNumber": 4
})");
  EXPECT_TRUE(MessageDifferencer::Equals(from_yaml, from_json))
      << from_yaml.DebugString() << "\nvs\n"
      << from_json.DebugString();
}

TEST(ConfigLoaderTest, JsonErrorsReportLines) {
  EXPECT_EQ(EverythingError("{\n  \"text\": \"a\",\n  \"i32\": \"x\"\n}"),
            "test.yaml:3: i32: expected int32, got \"x\"");
}

TEST(ConfigLoaderTest, EmptyTextGivesEmptyMessage) {
  EXPECT_EQ(ParseEverything("").ByteSizeLong(), 0u);
  EXPECT_EQ(ParseEverything("# only a comment\n").ByteSizeLong(), 0u);
}

TEST(ConfigLoaderTest, RejectsTopLevelThatIsNotAMapping) {
  EXPECT_EQ(EverythingError("- a\n- b\n"),
            "test.yaml:1: expected a mapping at the top level, got a sequence");
  EXPECT_EQ(EverythingError("just text"),
            "test.yaml:1: expected a mapping at the top level, got \"just "
            "text\"");
}

TEST(ConfigLoaderTest, ReportsYamlSyntaxErrorWithLine) {
  EXPECT_EQ(EverythingError("text: a\nnumbers: [1,\n"),
            "test.yaml:3: end of sequence flow not found");
}

TEST(ConfigLoaderTest, ClearsMessageFirstAndLeavesItClearedOnError) {
  Everything message;
  message.set_text("stale");
  message.set_i32(9);
  ASSERT_TRUE(ParseConfigText("i32: 1", "test.yaml", &message).ok());
  EXPECT_EQ(message.text(), "");
  EXPECT_EQ(message.i32(), 1);

  message.set_text("stale");
  EXPECT_FALSE(ParseConfigText("text: fine\nu32: -5\n", "test.yaml", &message).ok());
  EXPECT_EQ(message.ByteSizeLong(), 0u);
}

TEST(ConfigLoaderTest, LoadConfigFileReportsMissingFileAsNotFound) {
  const std::string path = testing::TempDir() + "/no-such-flowork-config.yaml";
  Everything message;
  message.set_text("stale");
  absl::Status status = LoadConfigFile(path, &message);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_EQ(message.ByteSizeLong(), 0u);
}

TEST(ConfigLoaderTest, LoadConfigFileReportsDirectoryAsNotFound) {
  Everything message;
  EXPECT_EQ(LoadConfigFile(testing::TempDir(), &message).code(), absl::StatusCode::kNotFound);
}

TEST(ConfigLoaderTest, LoadConfigFileParsesFileAndLabelsErrorsWithBaseName) {
  const std::string path = testing::TempDir() + "/flowork-router-test.yaml";
  {
    std::ofstream out(path);
    out << kExampleRouterConfig;
  }
  RouterConfig config;
  ASSERT_TRUE(LoadConfigFile(path, &config).ok());
  EXPECT_EQ(config.routes(0).name(), "chat");
  EXPECT_EQ(config.providers(0).timeouts().idle().seconds(), 60);

  {
    std::ofstream out(path);
    out << "listen:\n  htp: x\n";
  }
  absl::Status status = LoadConfigFile(path, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "flowork-router-test.yaml:2: listen.htp: unknown field");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace flowork::core
