// flowork-router --verify-audit PATH: checks an audit file and exits, as an
// operator runs it.
#include <sqlite3.h>
#include <stdio.h>
#include <sys/wait.h>

#include <array>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "flowork/router/audit_log.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::testing::HasSubstr;

// Runs `command`; returns its exit code and what it printed.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// An audit file of `n` entries, closed.
std::string WriteAuditFile(int n) {
  const std::string path = testing::MakeTempDir() + "/audit.db";
  router::AuditLogOptions options;
  options.path = path;
  auto log = router::AuditLog::Open(options);
  EXPECT_TRUE(log.ok()) << log.status();
  if (!log.ok()) return path;
  for (int i = 1; i <= n; ++i) {
    router::v1::AuditEntry entry;
    entry.set_request_id(absl::StrCat("r", i));
    entry.set_outcome("ok");
    EXPECT_TRUE((*log)->Append(entry));
  }
  return path;  // Closing commits.
}

// Flips one byte in the middle of entry `seq`'s stored bytes.
void FlipAByteOf(const std::string& path, int seq) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::string sql = absl::StrCat(
      "UPDATE audit_entries SET entry = substr(entry, 1, length(entry) / 2) || "
      "(CASE WHEN substr(entry, length(entry) / 2 + 1, 1) = x'00' THEN x'01' ELSE x'00' END) || "
      "substr(entry, length(entry) / 2 + 2) WHERE seq = ",
      seq);
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_changes(db), 1);
  sqlite3_close(db);
}

TEST(AuditCliTest, AnIntactFileExitsZeroWithASummary) {
  const std::string path = WriteAuditFile(3);
  auto [code, output] = RunCommand(absl::StrCat(FLOWORK_ROUTER_BIN, " --verify-audit ", path));
  EXPECT_EQ(code, 0) << output;
  EXPECT_THAT(output, HasSubstr("is intact: 3 entries, last entry 3, hash "));
  EXPECT_THAT(output, ::testing::Not(HasSubstr("serving")));
  auto [again, again_output] =
      RunCommand(absl::StrCat(FLOWORK_ROUTER_BIN, " --verify-audit=", path));
  EXPECT_EQ(again, 0) << again_output;
}

TEST(AuditCliTest, ATamperedFileExitsOneNamingTheEntry) {
  const std::string path = WriteAuditFile(3);
  FlipAByteOf(path, 2);
  auto [code, output] = RunCommand(absl::StrCat(FLOWORK_ROUTER_BIN, " --verify-audit ", path));
  EXPECT_EQ(code, 1) << output;
  EXPECT_THAT(output, HasSubstr("is BROKEN: entry 2: stored bytes do not match its hash "
                                "(first broken entry 2)"));
}

TEST(AuditCliTest, AnUnreadableFileExitsTwo) {
  const std::string missing = testing::MakeTempDir() + "/missing.db";
  auto [code, output] = RunCommand(absl::StrCat(FLOWORK_ROUTER_BIN, " --verify-audit ", missing));
  EXPECT_EQ(code, 2) << output;
  EXPECT_THAT(output, HasSubstr("cannot verify " + missing));
  auto [no_path, no_path_output] = RunCommand(absl::StrCat(FLOWORK_ROUTER_BIN, " --verify-audit"));
  EXPECT_EQ(no_path, 2) << no_path_output;
}

}  // namespace
}  // namespace flowork
