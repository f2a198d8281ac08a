// Remote workers in another language: Node workers (@grpc/grpc-js, the
// WorkerService loaded from the .proto files of the source tree) serve a
// KIND_REMOTE agent of flowork-agent. They lease and complete tasks; a
// worker killed while holding a lease loses it after the lease TTL and
// another worker completes the task, exactly once; a stalled worker's late
// completion with its old fencing token is refused. scripts/bootstrap
// installs node and tests/integration/grpc_node's node_modules; without them
// this test fails and says so.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "flowork/agent/v1/agent_service.pb.h"
#include "flowork/testing/child_process.h"
#include "flowork/testing/http_client.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::flowork::testing::ClientResponse;
using ::flowork::testing::FindOnPath;
using ::flowork::testing::HttpCall;
using ::flowork::testing::ServerProcess;
using ::testing::HasSubstr;

constexpr char kBootstrapHint[] = "run scripts/bootstrap to install node and @grpc/grpc-js";
// SHA-256 of "key-acme" and "key-beta".
constexpr char kAcmeKey[] = "key-acme";
constexpr char kBetaKey[] = "key-beta";
constexpr char kAcmeHash[] = "6371cb7a907cc8f10740229732c4b6164b285169494b85304468313513427878";
constexpr char kBetaHash[] = "8fd493b2a681a4810d9fd40526a9de960deb255e7bfbb1c4d509d06d6da6ff5b";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// One agent_worker.mjs process running in the background, its output in a
// file.
class NodeWorker {
 public:
  NodeWorker(const std::string& node, const std::string& target, const std::string& id,
             const std::vector<std::string>& extra)
      : output_path_(absl::StrCat(testing::MakeTempDir(), "/", id, ".out")) {
    std::vector<std::string> argv = {
        node,   std::string(FLOWORK_GRPC_NODE_DIR) + "/agent_worker.mjs",
        target, "--id",
        id,     "--agent",
        "echo"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::vector<char*> raw;
    for (std::string& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    const int fd = open(output_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      execv(raw[0], raw.data());
      _exit(127);
    }
    close(fd);
  }
  NodeWorker(const NodeWorker&) = delete;
  NodeWorker& operator=(const NodeWorker&) = delete;
  ~NodeWorker() { Kill(); }

  std::string output() const { return ReadFile(output_path_); }

  // Polls the output (bounded) until it holds `text`.
  bool WaitForOutput(const std::string& text, absl::Duration timeout = absl::Seconds(20)) const {
    const absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      if (output().find(text) != std::string::npos) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // Waits (bounded) for the process to exit; its exit code, -1 on a signal
  // or timeout (then it is killed).
  int Wait(absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    while (pid_ > 0 && absl::Now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    Kill();
    return -1;
  }

  // SIGKILL: the worker dies holding whatever it holds.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string output_path_;
  pid_t pid_ = -1;
};

// The fencing token of the worker's lease of `task_id`, from its
// "leased TASK token=T" line; 0 when there is none.
uint64_t LeasedToken(const std::string& output, const std::string& task_id) {
  const std::string prefix = absl::StrCat("leased ", task_id, " token=");
  const size_t at = output.find(prefix);
  if (at == std::string::npos) return 0;
  const size_t begin = at + prefix.size();
  uint64_t token = 0;
  EXPECT_TRUE(absl::SimpleAtoi(output.substr(begin, output.find(' ', begin) - begin), &token));
  return token;
}

class RemoteWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<std::string> node = FindOnPath("node");
    ASSERT_TRUE(node.has_value()) << "node is not on PATH; " << kBootstrapHint;
    node_ = *node;
    ASSERT_TRUE(std::filesystem::exists(std::string(FLOWORK_GRPC_NODE_DIR) +
                                        "/node_modules/@grpc/grpc-js/package.json"))
        << FLOWORK_GRPC_NODE_DIR << "/node_modules has no @grpc/grpc-js; " << kBootstrapHint;
    const std::string dir = testing::MakeTempDir();
    testing::WriteFile(dir + "/agent.yaml", absl::StrCat(R"yaml(
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
store: {path: ")yaml",
                                                         dir, R"yaml(/agent.db"}
workers: {lease_ttl: 1s, max_lease_wait: 2s}
keys:
  - {name: acme, sha256: )yaml",
                                                         kAcmeHash, R"yaml(, tenant: acme}
  - {name: beta, sha256: )yaml",
                                                         kBetaHash, R"yaml(, tenant: beta}
agents:
  - {name: echo, kind: KIND_REMOTE, description: "Echoes its input, from a Node worker."}
)yaml"));
    config_ = dir + "/agent.yaml";
    StartAgent();
  }

  // Starts flowork-agent (again) on the same store; new ports.
  void StartAgent() {
    agent_.reset();
    absl::StatusOr<ServerProcess> agent =
        ServerProcess::Start(FLOWORK_AGENT_BIN, {"--config", config_});
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_.emplace(*std::move(agent));
  }

  std::unique_ptr<NodeWorker> Worker(const std::string& id, std::vector<std::string> extra = {},
                                     const char* key = kAcmeKey) {
    extra.insert(extra.end(), {"--key", key});
    return std::make_unique<NodeWorker>(node_, agent_->grpc_target(), id, extra);
  }

  std::string Submit(const std::string& input) {
    absl::StatusOr<ClientResponse> r =
        HttpCall(agent_->http_port(), "POST", "/v1/tasks",
                 absl::StrCat(R"({"agent":"echo","input":")", input, R"("})"),
                 {{"authorization", absl::StrCat("Bearer ", kAcmeKey)}});
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    EXPECT_EQ(r->status, 200) << r->body;
    agent::v1::Task task;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r->body, &task).ok()) << r->body;
    return task.id();
  }

  // Polls the task (bounded) until it is final.
  agent::v1::Task WaitFinal(const std::string& id, absl::Duration limit = absl::Seconds(30)) {
    const absl::Time end = absl::Now() + limit;
    agent::v1::Task task;
    while (absl::Now() < end) {
      absl::StatusOr<ClientResponse> r =
          HttpCall(agent_->http_port(), "GET", absl::StrCat("/v1/tasks/", id), "",
                   {{"authorization", absl::StrCat("Bearer ", kAcmeKey)}});
      if (r.ok() && r->status == 200) {
        task.Clear();
        EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r->body, &task).ok());
        if (task.state() >= agent::v1::TASK_STATE_SUCCEEDED &&
            task.state() <= agent::v1::TASK_STATE_TIMED_OUT) {
          return task;
        }
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "task " << id << " is not final: " << agent::v1::TaskState_Name(task.state());
    return task;
  }

  // The types of the task's whole event stream (it ends: the task is final).
  std::vector<std::string> EventTypes(const std::string& id) {
    absl::StatusOr<ClientResponse> r =
        HttpCall(agent_->http_port(), "GET", absl::StrCat("/v1/tasks/", id, "/events"), "",
                 {{"authorization", absl::StrCat("Bearer ", kAcmeKey)}}, 30'000);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> types;
    if (!r.ok()) return types;
    std::istringstream lines(r->body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("data: ", 0) != 0) continue;
      agent::v1::TaskEvent event;
      if (google::protobuf::util::JsonStringToMessage(line.substr(6), &event).ok()) {
        types.push_back(event.type());
      }
    }
    return types;
  }

  static std::string Field(const agent::v1::Task& task, const std::string& name) {
    const auto& fields = task.output().struct_value().fields();
    auto it = fields.find(name);
    return it == fields.end() ? "" : it->second.string_value();
  }

  std::string node_;
  std::string config_;
  std::optional<ServerProcess> agent_;
};

TEST_F(RemoteWorkerTest, TwoNodeWorkersLeaseAndCompleteTheTenantsTasks) {
  auto w1 = Worker("w1");
  auto w2 = Worker("w2");
  auto outsider = Worker("outsider", {}, kBetaKey);  // Another tenant: sees none of it.
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(Submit(absl::StrCat("job-", i)));
  for (int i = 0; i < 6; ++i) {
    agent::v1::Task task = WaitFinal(ids[i]);
    ASSERT_EQ(task.state(), agent::v1::TASK_STATE_SUCCEEDED) << task.error() << "\nw1:\n"
                                                             << w1->output() << "\nw2:\n"
                                                             << w2->output() << "\nagent:\n"
                                                             << agent_->log();
    EXPECT_EQ(Field(task, "echo"), absl::StrCat("job-", i));
    EXPECT_THAT(Field(task, "worker"), ::testing::AnyOf("w1", "w2"));
    // The worker prints its line once Complete answered, maybe after the
    // task already shows as finished.
    const NodeWorker& by = Field(task, "worker") == "w1" ? *w1 : *w2;
    EXPECT_TRUE(by.WaitForOutput(absl::StrCat("completed ", ids[i]))) << by.output();
  }
  EXPECT_THAT(outsider->output(), ::testing::Not(HasSubstr("leased")));
  EXPECT_THAT(outsider->output(), ::testing::Not(HasSubstr("agent_worker:"))) << "no errors";
}

TEST_F(RemoteWorkerTest, AKilledWorkersLeaseExpiresAndAnotherWorkerCompletesTheTaskOnce) {
  auto doomed = Worker("doomed", {"--mode", "hang"});
  const std::string id = Submit("survive me");
  ASSERT_TRUE(doomed->WaitForOutput(absl::StrCat("leased ", id))) << doomed->output();
  const uint64_t doomed_token = LeasedToken(doomed->output(), id);
  doomed->Kill();

  auto rescuer = Worker("rescuer");
  agent::v1::Task task = WaitFinal(id);
  ASSERT_EQ(task.state(), agent::v1::TASK_STATE_SUCCEEDED) << task.error() << "\n"
                                                           << rescuer->output() << "\n"
                                                           << agent_->log();
  EXPECT_EQ(Field(task, "worker"), "rescuer");
  EXPECT_EQ(Field(task, "echo"), "survive me");
  EXPECT_GT(LeasedToken(rescuer->output(), id), doomed_token) << rescuer->output();

  const std::vector<std::string> types = EventTypes(id);
  EXPECT_EQ(std::count(types.begin(), types.end(), "dev.flowork.task.step.completed"), 2)
      << "one remote step and the finish step";
  EXPECT_EQ(std::count(types.begin(), types.end(), "dev.flowork.task.step.failed"), 0);
  EXPECT_EQ(std::count(types.begin(), types.end(), "dev.flowork.task.finished"), 1);
}

TEST_F(RemoteWorkerTest, AStalledWorkersLateCompletionIsRejectedAndChangesNothing) {
  auto sleepy = Worker("sleepy", {"--mode", "stall", "--stall-ms", "3000"});
  const std::string id = Submit("wait for me");
  ASSERT_TRUE(sleepy->WaitForOutput(absl::StrCat("leased ", id))) << sleepy->output();

  auto rescuer = Worker("rescuer");
  agent::v1::Task task = WaitFinal(id);
  ASSERT_EQ(task.state(), agent::v1::TASK_STATE_SUCCEEDED) << task.error();
  EXPECT_EQ(Field(task, "worker"), "rescuer");

  // The stalled worker wakes after its lease expired and tries to complete.
  EXPECT_EQ(sleepy->Wait(absl::Seconds(20)), 0) << sleepy->output();
  EXPECT_THAT(sleepy->output(), HasSubstr(absl::StrCat("rejected ", id, " code=ABORTED")));
  EXPECT_THAT(sleepy->output(), HasSubstr("stale"));
  EXPECT_THAT(sleepy->output(), ::testing::Not(HasSubstr(absl::StrCat("completed ", id))));
  agent::v1::Task after = WaitFinal(id);
  EXPECT_EQ(Field(after, "worker"), "rescuer") << "the late completion changed nothing";
  const std::vector<std::string> types = EventTypes(id);
  EXPECT_EQ(std::count(types.begin(), types.end(), "dev.flowork.task.finished"), 1);
}

TEST_F(RemoteWorkerTest, CancellingTheTaskTellsTheWorkingWorkerToStop) {
  // Works for 20 s, heartbeating: it learns of the cancel from a heartbeat.
  auto busy = Worker("busy", {"--mode", "work", "--work-ms", "20000", "--max", "1"});
  const std::string id = Submit("never mind");
  ASSERT_TRUE(busy->WaitForOutput(absl::StrCat("leased ", id))) << busy->output();
  absl::StatusOr<ClientResponse> r =
      HttpCall(agent_->http_port(), "POST", absl::StrCat("/v1/tasks/", id, ":cancel"), "",
               {{"authorization", absl::StrCat("Bearer ", kAcmeKey)}});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(WaitFinal(id).state(), agent::v1::TASK_STATE_CANCELLED);
  EXPECT_TRUE(busy->WaitForOutput(absl::StrCat("cancelled ", id))) << busy->output();
  EXPECT_THAT(busy->output(), ::testing::Not(HasSubstr(absl::StrCat("completed ", id))));
}

TEST_F(RemoteWorkerTest, WorkLeasedWhenTheServerIsKilledIsQueuedAgainAfterARestart) {
  auto doomed = Worker("doomed", {"--mode", "hang"});
  const std::string id = Submit("outlive the server");
  ASSERT_TRUE(doomed->WaitForOutput(absl::StrCat("leased ", id))) << doomed->output();
  ASSERT_TRUE(agent_->Stop(SIGKILL, absl::Seconds(10)).ok());
  doomed->Kill();

  StartAgent();  // The journaled remote step is performed again: queued.
  auto rescuer = Worker("rescuer");
  agent::v1::Task task = WaitFinal(id);
  ASSERT_EQ(task.state(), agent::v1::TASK_STATE_SUCCEEDED) << task.error() << "\n"
                                                           << rescuer->output() << "\n"
                                                           << agent_->log();
  EXPECT_EQ(Field(task, "worker"), "rescuer");
  EXPECT_EQ(Field(task, "echo"), "outlive the server");
  const std::vector<std::string> types = EventTypes(id);
  EXPECT_EQ(std::count(types.begin(), types.end(), "dev.flowork.task.finished"), 1);
}

}  // namespace
}  // namespace flowork
