// The step journal under SIGKILL: a worker process runs multi-step tasks and
// is killed at random points, many times. After each restart every task must
// finish exactly once, and no step that had completed may run again.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "flowork/agent/sqlite_task_store.h"
#include "flowork/testing/server_process.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

constexpr int kTasks = 150;

// (task id, seq) of every step journaled COMPLETED.
std::set<std::pair<std::string, uint64_t>> CompletedSteps(const std::string& db) {
  std::set<std::pair<std::string, uint64_t>> completed;
  auto store = CreateSqliteTaskStore({.path = db});
  if (!store.ok()) return completed;  // Not created yet.
  TaskFilter all;
  all.page_size = 1000;
  auto page = (*store)->List(all);
  if (!page.ok()) return completed;
  for (const v1::Task& task : page->tasks) {
    auto journal = (*store)->Journal(task.id());
    if (!journal.ok()) continue;
    for (const v1::StepRecord& step : *journal) {
      if (step.status() == v1::StepRecord::STATUS_COMPLETED)
        completed.emplace(task.id(), step.seq());
    }
  }
  return completed;
}

int RunWorker(const std::string& db, const std::string& log, int incarnation,
              absl::Duration kill_after) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string inc = absl::StrCat(incarnation), tasks = absl::StrCat(kTasks);
    execl(FLOWORK_CRASH_WORKER_BIN, FLOWORK_CRASH_WORKER_BIN, db.c_str(), log.c_str(), inc.c_str(),
          tasks.c_str(), nullptr);
    _exit(127);
  }
  const absl::Time deadline = absl::Now() + kill_after;
  int status = 0;
  while (absl::Now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    absl::SleepFor(absl::Milliseconds(2));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;  // Killed.
}

TEST(AgentCrashTest, EveryTaskFinishesOnceAndNoCompletedStepRunsAgain) {
  const std::string dir = testing::MakeTempDir();
  const std::string db = dir + "/tasks.db", log = dir + "/effects.log";
  std::mt19937 rng(20261125);
  // Before incarnation i started: the steps already completed.
  std::map<int, std::set<std::pair<std::string, uint64_t>>> completed_before;
  int incarnation = 0, kills = 0;
  for (; incarnation < 60; ++incarnation) {
    completed_before[incarnation] = CompletedSteps(db);
    // Killed at a random point while it works; given room to finish at the end.
    const absl::Duration kill_after =
        incarnation < 25 ? absl::Milliseconds(std::uniform_int_distribution<int>(60, 250)(rng))
                         : absl::Seconds(60);
    const int exit_code = RunWorker(db, log, incarnation, kill_after);
    if (exit_code == 0) break;
    ASSERT_EQ(exit_code, -1) << "the worker failed on its own";
    ++kills;
  }
  ASSERT_LT(incarnation, 60) << "the tasks never all finished";
  EXPECT_GE(kills, 8);

  auto store = CreateSqliteTaskStore({.path = db});
  ASSERT_TRUE(store.ok()) << store.status();
  TaskFilter all;
  all.page_size = 1000;
  auto page = (*store)->List(all);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->tasks.size(), static_cast<size_t>(kTasks));  // Resubmits created nothing.
  std::set<std::string> ids;
  for (const v1::Task& task : page->tasks) {
    ids.insert(task.id());
    EXPECT_EQ(task.state(), v1::TASK_STATE_SUCCEEDED) << task.id() << " " << task.error();
    auto journal = (*store)->Journal(task.id());
    ASSERT_EQ(journal->size(), 4u);  // Three tool steps and one finish, once each.
    for (const v1::StepRecord& step : *journal) {
      EXPECT_EQ(step.status(), v1::StepRecord::STATUS_COMPLETED);
    }
  }
  // Every side effect: never for a step that had completed before its run.
  std::ifstream in(log);
  std::string line;
  std::map<std::pair<std::string, uint64_t>, int> performed;
  int repeated = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id;
    uint64_t seq = 0;
    int inc = -1;
    fields >> id >> seq >> inc;
    ASSERT_TRUE(ids.count(id)) << line;
    EXPECT_FALSE(completed_before[inc].count(std::make_pair(id, seq)))
        << "step " << seq << " of " << id << " ran again in incarnation " << inc
        << " after it had completed";
    if (++performed[std::make_pair(id, seq)] > 1) ++repeated;
  }
  for (const std::string& id : ids) {
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      EXPECT_GE(performed[std::make_pair(id, seq)], 1) << id << " " << seq;
    }
  }
  // Steps cut off mid-effect were performed again (that is allowed); report.
  std::cout << "incarnations " << incarnation + 1 << ", kills " << kills
            << ", unfinished steps performed again " << repeated << "\n";
}

}  // namespace
}  // namespace flowork::agent
