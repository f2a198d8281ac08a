#include "flowork/agent/task_state.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::HasSubstr;

constexpr v1::TaskState kPending = v1::TASK_STATE_PENDING;
constexpr v1::TaskState kAdmitted = v1::TASK_STATE_ADMITTED;
constexpr v1::TaskState kRunning = v1::TASK_STATE_RUNNING;
constexpr v1::TaskState kSucceeded = v1::TASK_STATE_SUCCEEDED;
constexpr v1::TaskState kFailed = v1::TASK_STATE_FAILED;
constexpr v1::TaskState kCancelled = v1::TASK_STATE_CANCELLED;
constexpr v1::TaskState kTimedOut = v1::TASK_STATE_TIMED_OUT;
constexpr v1::TaskState kSuspended = v1::TASK_STATE_SUSPENDED;

std::vector<v1::TaskState> AllStates() {
  std::vector<v1::TaskState> states;
  for (int i = v1::TaskState_MIN; i <= v1::TaskState_MAX; ++i) {
    states.push_back(static_cast<v1::TaskState>(i));
  }
  return states;
}

const std::vector<v1::TaskState> kActive = {kRunning,
                                            v1::TASK_STATE_WAITING_LLM,
                                            v1::TASK_STATE_WAITING_TOOL,
                                            v1::TASK_STATE_WAITING_APPROVAL,
                                            v1::TASK_STATE_WAITING_TIMER,
                                            v1::TASK_STATE_WAITING_CHILDREN};

// The legal moves, written out independently of the implementation.
std::set<std::pair<v1::TaskState, v1::TaskState>> LegalMoves() {
  std::set<std::pair<v1::TaskState, v1::TaskState>> legal = {
      {kPending, kAdmitted},   {kPending, kCancelled},   {kPending, kTimedOut},
      {kPending, kSuspended},  {kAdmitted, kRunning},    {kAdmitted, kPending},
      {kAdmitted, kCancelled}, {kAdmitted, kTimedOut},   {kAdmitted, kSuspended},
      {kSuspended, kPending},  {kSuspended, kCancelled},
  };
  for (v1::TaskState from : kActive) {
    for (v1::TaskState to : kActive) legal.insert({from, to});
    for (v1::TaskState to : {kSucceeded, kFailed, kCancelled, kTimedOut, kSuspended, kPending}) {
      legal.insert({from, to});
    }
  }
  return legal;
}

TEST(TaskStateTest, EveryPairOfStatesIsLegalExactlyWhenTheTableSaysSo) {
  const auto legal = LegalMoves();
  int checked = 0;
  for (v1::TaskState from : AllStates()) {
    for (v1::TaskState to : AllStates()) {
      SCOPED_TRACE(v1::TaskState_Name(from) + " -> " + v1::TaskState_Name(to));
      const absl::Status status = CheckTransition(from, to);
      if (legal.contains({from, to})) {
        EXPECT_TRUE(status.ok()) << status;
      } else {
        EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_THAT(status.message(), HasSubstr(v1::TaskState_Name(from)));
        EXPECT_THAT(status.message(), HasSubstr(v1::TaskState_Name(to)));
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 14 * 14);
  EXPECT_EQ(legal.size(), 4u + 5u + 2u + 6u * 12u);
}

TEST(TaskStateTest, OnlyActiveStatesMayStayWhereTheyAre) {
  for (v1::TaskState state : AllStates()) {
    const bool active = IsActive(state);
    EXPECT_EQ(CheckTransition(state, state).ok(), active) << v1::TaskState_Name(state);
  }
}

TEST(TaskStateTest, IllegalMoveNamesBothStatesAndFinality) {
  EXPECT_EQ(CheckTransition(kSucceeded, kRunning).message(),
            "task state TASK_STATE_SUCCEEDED cannot move to TASK_STATE_RUNNING "
            "(TASK_STATE_SUCCEEDED is final)");
  EXPECT_EQ(CheckTransition(kPending, kRunning).message(),
            "task state TASK_STATE_PENDING cannot move to TASK_STATE_RUNNING");
  EXPECT_EQ(CheckTransition(kPending, static_cast<v1::TaskState>(99)).message(),
            "task state TASK_STATE_PENDING cannot move to TaskState(99)");
}

TEST(TaskStateTest, FinalAndActiveClassifyEveryState) {
  const std::set<v1::TaskState> final_states = {kSucceeded, kFailed, kCancelled, kTimedOut};
  const std::set<v1::TaskState> active(kActive.begin(), kActive.end());
  for (v1::TaskState state : AllStates()) {
    EXPECT_EQ(IsFinal(state), final_states.contains(state)) << v1::TaskState_Name(state);
    EXPECT_EQ(IsActive(state), active.contains(state)) << v1::TaskState_Name(state);
  }
}

}  // namespace
}  // namespace flowork::agent
