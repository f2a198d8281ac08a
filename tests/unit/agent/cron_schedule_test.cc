#include "flowork/agent/cron_schedule.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::ElementsAre;

absl::Time Utc(int year, int month, int day, int hour, int minute, int second = 0) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                         absl::UTCTimeZone());
}

std::string Format(absl::Time t) {
  return absl::FormatTime("%a %Y-%m-%d %H:%M:%S", t, absl::UTCTimeZone());
}

// The next `count` fire times after `start`, each as UTC with its weekday, or
// the parse error as the only element.
std::vector<std::string> Fires(std::string_view expression, std::string_view zone, absl::Time start,
                               int count) {
  absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse(expression, zone);
  if (!schedule.ok()) return {std::string(schedule.status().message())};
  std::vector<std::string> fires;
  absl::Time t = start;
  for (int i = 0; i < count; ++i) {
    t = schedule->NextAfter(t);
    fires.push_back(Format(t));
  }
  return fires;
}

std::vector<std::string> FiresUtc(std::string_view expression, absl::Time start, int count) {
  return Fires(expression, "UTC", start, count);
}

// The message of the error Parse returns, checking it is kInvalidArgument.
std::string ParseError(std::string_view expression, std::string_view zone = "UTC") {
  absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse(expression, zone);
  if (schedule.ok()) return "parsed";
  EXPECT_EQ(schedule.status().code(), absl::StatusCode::kInvalidArgument) << schedule.status();
  return std::string(schedule.status().message());
}

// --- Syntax -----------------------------------------------------------------

TEST(CronScheduleTest, EveryMinuteFiresStrictlyAfterTheGivenTime) {
  EXPECT_THAT(FiresUtc("* * * * *", Utc(2024, 1, 1, 0, 0, 30), 2),
              ElementsAre("Mon 2024-01-01 00:01:00", "Mon 2024-01-01 00:02:00"));
  EXPECT_THAT(FiresUtc("* * * * *", Utc(2024, 1, 1, 0, 1), 1),
              ElementsAre("Mon 2024-01-01 00:02:00"));
}

TEST(CronScheduleTest, FixedMinuteAndHourFireDaily) {
  EXPECT_THAT(FiresUtc("30 14 * * *", Utc(2024, 1, 1, 14, 30), 2),
              ElementsAre("Tue 2024-01-02 14:30:00", "Wed 2024-01-03 14:30:00"));
}

TEST(CronScheduleTest, RangeCoversBothEnds) {
  EXPECT_THAT(FiresUtc("0 9-11 * * *", Utc(2024, 1, 1, 0, 0), 4),
              ElementsAre("Mon 2024-01-01 09:00:00", "Mon 2024-01-01 10:00:00",
                          "Mon 2024-01-01 11:00:00", "Tue 2024-01-02 09:00:00"));
}

TEST(CronScheduleTest, ListMixesValuesRangesAndSteps) {
  EXPECT_THAT(
      FiresUtc("5,35 * * * *", Utc(2024, 1, 1, 0, 0), 3),
      ElementsAre("Mon 2024-01-01 00:05:00", "Mon 2024-01-01 00:35:00", "Mon 2024-01-01 01:05:00"));
  EXPECT_THAT(
      FiresUtc("0-10/5,50-52 0 * * *", Utc(2024, 1, 1, 0, 0), 6),
      ElementsAre("Mon 2024-01-01 00:05:00", "Mon 2024-01-01 00:10:00", "Mon 2024-01-01 00:50:00",
                  "Mon 2024-01-01 00:51:00", "Mon 2024-01-01 00:52:00", "Tue 2024-01-02 00:00:00"));
}

TEST(CronScheduleTest, StepOverStarStartsAtTheFieldMinimum) {
  EXPECT_THAT(FiresUtc("*/20 * * * *", Utc(2024, 1, 1, 0, 0), 4),
              ElementsAre("Mon 2024-01-01 00:20:00", "Mon 2024-01-01 00:40:00",
                          "Mon 2024-01-01 01:00:00", "Mon 2024-01-01 01:20:00"));
  EXPECT_THAT(FiresUtc("0 */7 * * *", Utc(2024, 1, 1, 0, 0), 4),
              ElementsAre("Mon 2024-01-01 07:00:00", "Mon 2024-01-01 14:00:00",
                          "Mon 2024-01-01 21:00:00", "Tue 2024-01-02 00:00:00"));
  // Days of the month start at 1, months at 1 (JAN).
  EXPECT_THAT(FiresUtc("0 0 */10 * *", Utc(2024, 1, 1, 0, 0), 4),
              ElementsAre("Thu 2024-01-11 00:00:00", "Sun 2024-01-21 00:00:00",
                          "Wed 2024-01-31 00:00:00", "Thu 2024-02-01 00:00:00"));
  EXPECT_THAT(
      FiresUtc("0 0 1 */5 *", Utc(2024, 1, 1, 0, 0), 3),
      ElementsAre("Sat 2024-06-01 00:00:00", "Fri 2024-11-01 00:00:00", "Wed 2025-01-01 00:00:00"));
}

TEST(CronScheduleTest, StepOverRangeStaysInsideIt) {
  EXPECT_THAT(FiresUtc("10-30/10 * * * *", Utc(2024, 1, 1, 0, 0), 4),
              ElementsAre("Mon 2024-01-01 00:10:00", "Mon 2024-01-01 00:20:00",
                          "Mon 2024-01-01 00:30:00", "Mon 2024-01-01 01:10:00"));
  EXPECT_THAT(FiresUtc("0 0 1-10/3 * *", Utc(2024, 1, 1, 0, 0), 4),
              ElementsAre("Thu 2024-01-04 00:00:00", "Sun 2024-01-07 00:00:00",
                          "Wed 2024-01-10 00:00:00", "Thu 2024-02-01 00:00:00"));
}

TEST(CronScheduleTest, MonthNamesInAnyCase) {
  EXPECT_THAT(FiresUtc("0 0 1 jan,Jul *", Utc(2024, 1, 1, 0, 0), 2),
              ElementsAre("Mon 2024-07-01 00:00:00", "Wed 2025-01-01 00:00:00"));
  EXPECT_THAT(FiresUtc("0 0 1 MAR-may *", Utc(2024, 1, 1, 0, 0), 4),
              ElementsAre("Fri 2024-03-01 00:00:00", "Mon 2024-04-01 00:00:00",
                          "Wed 2024-05-01 00:00:00", "Sat 2025-03-01 00:00:00"));
}

TEST(CronScheduleTest, DayNamesInAnyCase) {
  // 2024-01-05 is a Friday.
  EXPECT_THAT(
      FiresUtc("0 12 * * mon-FRI", Utc(2024, 1, 5, 0, 0), 3),
      ElementsAre("Fri 2024-01-05 12:00:00", "Mon 2024-01-08 12:00:00", "Tue 2024-01-09 12:00:00"));
  EXPECT_THAT(
      FiresUtc("0 0 * * Sat,sun", Utc(2024, 1, 5, 0, 0), 3),
      ElementsAre("Sat 2024-01-06 00:00:00", "Sun 2024-01-07 00:00:00", "Sat 2024-01-13 00:00:00"));
}

TEST(CronScheduleTest, SevenIsSundayLikeZero) {
  const std::vector<std::string> sundays = {"Sun 2024-01-07 00:00:00", "Sun 2024-01-14 00:00:00"};
  EXPECT_EQ(FiresUtc("0 0 * * 0", Utc(2024, 1, 1, 0, 0), 2), sundays);
  EXPECT_EQ(FiresUtc("0 0 * * 7", Utc(2024, 1, 1, 0, 0), 2), sundays);
  EXPECT_EQ(FiresUtc("0 0 * * SUN", Utc(2024, 1, 1, 0, 0), 2), sundays);
  EXPECT_THAT(FiresUtc("0 0 * * 5-7", Utc(2024, 1, 1, 0, 0), 4),
              ElementsAre("Fri 2024-01-05 00:00:00", "Sat 2024-01-06 00:00:00",
                          "Sun 2024-01-07 00:00:00", "Fri 2024-01-12 00:00:00"));
}

TEST(CronScheduleTest, FieldsMaySitBetweenAnyRunOfSpacesAndTabs) {
  EXPECT_THAT(FiresUtc("  15 \t 3  *\t*   *  ", Utc(2024, 1, 1, 0, 0), 1),
              ElementsAre("Mon 2024-01-01 03:15:00"));
}

TEST(CronScheduleTest, MacrosExpandToTheirStandardForms) {
  const absl::Time start = Utc(2024, 5, 15, 10, 20);
  EXPECT_THAT(FiresUtc("@yearly", start, 2),
              ElementsAre("Wed 2025-01-01 00:00:00", "Thu 2026-01-01 00:00:00"));
  EXPECT_THAT(FiresUtc("@annually", start, 1), ElementsAre("Wed 2025-01-01 00:00:00"));
  EXPECT_THAT(FiresUtc("@monthly", start, 2),
              ElementsAre("Sat 2024-06-01 00:00:00", "Mon 2024-07-01 00:00:00"));
  EXPECT_THAT(FiresUtc("@weekly", start, 2),
              ElementsAre("Sun 2024-05-19 00:00:00", "Sun 2024-05-26 00:00:00"));
  EXPECT_THAT(FiresUtc("@daily", start, 2),
              ElementsAre("Thu 2024-05-16 00:00:00", "Fri 2024-05-17 00:00:00"));
  EXPECT_THAT(FiresUtc("@midnight", start, 1), ElementsAre("Thu 2024-05-16 00:00:00"));
  EXPECT_THAT(FiresUtc("@hourly", start, 2),
              ElementsAre("Wed 2024-05-15 11:00:00", "Wed 2024-05-15 12:00:00"));
  EXPECT_THAT(FiresUtc(" @Daily ", start, 1), ElementsAre("Thu 2024-05-16 00:00:00"));
}

TEST(CronScheduleTest, KeepsExpressionAndZoneAsGiven) {
  absl::StatusOr<CronSchedule> berlin = CronSchedule::Parse("@daily", "Europe/Berlin");
  ASSERT_TRUE(berlin.ok()) << berlin.status();
  EXPECT_EQ(berlin->expression(), "@daily");
  EXPECT_EQ(berlin->time_zone(), "Europe/Berlin");
  absl::StatusOr<CronSchedule> utc = CronSchedule::Parse("*/5 * * * *", "");
  ASSERT_TRUE(utc.ok()) << utc.status();
  EXPECT_EQ(utc->expression(), "*/5 * * * *");
  EXPECT_EQ(utc->time_zone(), "UTC");
}

TEST(CronScheduleTest, InfiniteTimeHasNoNextFire) {
  absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse("* * * * *", "UTC");
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_EQ(schedule->NextAfter(absl::InfiniteFuture()), absl::InfiniteFuture());
  EXPECT_EQ(schedule->NextAfter(absl::InfinitePast()), absl::InfiniteFuture());
}

// --- Errors -----------------------------------------------------------------

TEST(CronScheduleParseTest, ValueOutOfRangeNamesFieldAndToken) {
  EXPECT_EQ(ParseError("61 * * * *"), "cron \"61 * * * *\": minute: 61 is out of range 0-59");
  EXPECT_EQ(ParseError("0 24 * * *"), "cron \"0 24 * * *\": hour: 24 is out of range 0-23");
  EXPECT_EQ(ParseError("0 0 0 * *"), "cron \"0 0 0 * *\": day-of-month: 0 is out of range 1-31");
  EXPECT_EQ(ParseError("0 0 32 * *"), "cron \"0 0 32 * *\": day-of-month: 32 is out of range 1-31");
  EXPECT_EQ(ParseError("0 0 * 13 *"), "cron \"0 0 * 13 *\": month: 13 is out of range 1-12");
  EXPECT_EQ(ParseError("0 0 * 0 *"), "cron \"0 0 * 0 *\": month: 0 is out of range 1-12");
  EXPECT_EQ(ParseError("0 0 * * 8"), "cron \"0 0 * * 8\": day-of-week: 8 is out of range 0-7");
  EXPECT_EQ(ParseError("99999999999 * * * *"),
            "cron \"99999999999 * * * *\": minute: 99999999999 is out of range 0-59");
  EXPECT_EQ(ParseError("0-60 * * * *"), "cron \"0-60 * * * *\": minute: 60 is out of range 0-59");
}

TEST(CronScheduleParseTest, BadRanges) {
  EXPECT_EQ(ParseError("0 5-1 * * *"),
            "cron \"0 5-1 * * *\": hour: range \"5-1\" starts after it ends");
  EXPECT_EQ(ParseError("0 0 * * FRI-MON"),
            "cron \"0 0 * * FRI-MON\": day-of-week: range \"FRI-MON\" starts after it ends");
  EXPECT_EQ(ParseError("1- * * * *"), "cron \"1- * * * *\": minute: bad range \"1-\" (want a-b)");
  EXPECT_EQ(ParseError("-1 * * * *"), "cron \"-1 * * * *\": minute: bad range \"-1\" (want a-b)");
  EXPECT_EQ(ParseError("1-2-3 * * * *"),
            "cron \"1-2-3 * * * *\": minute: bad range \"1-2-3\" (want a-b)");
  EXPECT_EQ(ParseError("1,,2 * * * *"), "cron \"1,,2 * * * *\": minute: empty list element");
}

TEST(CronScheduleParseTest, BadSteps) {
  EXPECT_EQ(ParseError("*/0 * * * *"),
            "cron \"*/0 * * * *\": minute: step 0 in \"*/0\" is out of range 1-59");
  EXPECT_EQ(ParseError("*/60 * * * *"),
            "cron \"*/60 * * * *\": minute: step 60 in \"*/60\" is out of range 1-59");
  EXPECT_EQ(ParseError("0 0 * * */7"),
            "cron \"0 0 * * */7\": day-of-week: step 7 in \"*/7\" is out of range 1-6");
  EXPECT_EQ(ParseError("*/x * * * *"),
            "cron \"*/x * * * *\": minute: bad step \"x\" in \"*/x\" (want a number)");
  EXPECT_EQ(ParseError("*/ * * * *"),
            "cron \"*/ * * * *\": minute: bad step \"\" in \"*/\" (want a number)");
  EXPECT_EQ(ParseError("*/2/3 * * * *"),
            "cron \"*/2/3 * * * *\": minute: bad step \"2/3\" in \"*/2/3\" (want a number)");
  EXPECT_EQ(ParseError("5/15 * * * *"),
            "cron \"5/15 * * * *\": minute: step in \"5/15\" needs * or a range a-b before it");
}

TEST(CronScheduleParseTest, WrongFieldCount) {
  EXPECT_EQ(ParseError("* * * *"),
            "cron \"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), "
            "got 4");
  EXPECT_EQ(ParseError("0 * * * * *"),
            "cron \"0 * * * * *\": expected 5 fields (minute hour day-of-month month "
            "day-of-week), got 6");
  EXPECT_EQ(ParseError(""),
            "cron \"\": expected 5 fields (minute hour day-of-month month day-of-week), got 0");
  EXPECT_EQ(ParseError("@daily 5"), "cron \"@daily 5\": @daily takes no fields after it, got 1");
}

TEST(CronScheduleParseTest, UnknownNamesAndMacros) {
  EXPECT_EQ(ParseError("0 0 * FOO *"), "cron \"0 0 * FOO *\": month: unknown name \"FOO\"");
  EXPECT_EQ(ParseError("0 0 * * FUNDAY"),
            "cron \"0 0 * * FUNDAY\": day-of-week: unknown name \"FUNDAY\"");
  // Each field knows only its own names.
  EXPECT_EQ(ParseError("0 0 * * JAN"), "cron \"0 0 * * JAN\": day-of-week: unknown name \"JAN\"");
  EXPECT_EQ(ParseError("0 0 * MON *"), "cron \"0 0 * MON *\": month: unknown name \"MON\"");
  EXPECT_EQ(ParseError("MON * * * *"), "cron \"MON * * * *\": minute: \"MON\" is not a number");
  EXPECT_EQ(ParseError("@reboot"),
            "cron \"@reboot\": unknown macro \"@reboot\" (use @yearly, @annually, @monthly, "
            "@weekly, @daily, @midnight or @hourly)");
}

TEST(CronScheduleParseTest, QuartzExtensionsAreRejectedAsSuch) {
  EXPECT_EQ(ParseError("0 0 L * *"),
            "cron \"0 0 L * *\": day-of-month: \"L\" is not supported (L, W, # and ? are Quartz "
            "extensions, not cron)");
  EXPECT_EQ(ParseError("0 0 15W * *"),
            "cron \"0 0 15W * *\": day-of-month: \"15W\" is not supported (L, W, # and ? are "
            "Quartz extensions, not cron)");
  EXPECT_EQ(ParseError("0 0 ? * MON"),
            "cron \"0 0 ? * MON\": day-of-month: \"?\" is not supported (L, W, # and ? are "
            "Quartz extensions, not cron)");
  EXPECT_EQ(ParseError("0 0 * * 5#3"),
            "cron \"0 0 * * 5#3\": day-of-week: \"5#3\" is not supported (L, W, # and ? are "
            "Quartz extensions, not cron)");
  EXPECT_EQ(ParseError("0 0 * * 5L"),
            "cron \"0 0 * * 5L\": day-of-week: \"5L\" is not supported (L, W, # and ? are "
            "Quartz extensions, not cron)");
}

TEST(CronScheduleParseTest, UnknownTimeZone) {
  EXPECT_EQ(ParseError("0 0 * * *", "Mars/Olympus_Mons"),
            "cron \"0 0 * * *\": unknown time zone \"Mars/Olympus_Mons\"");
  // A zone is a name, never a file to read.
  EXPECT_EQ(ParseError("0 0 * * *", "/etc/passwd"),
            "cron \"0 0 * * *\": unknown time zone \"/etc/passwd\"");
  EXPECT_EQ(ParseError("0 0 * * *", "../../etc/passwd"),
            "cron \"0 0 * * *\": unknown time zone \"../../etc/passwd\"");
}

TEST(CronScheduleParseTest, ExpressionThatNeverFiresIsRejected) {
  EXPECT_EQ(ParseError("0 0 30 2 *"),
            "cron \"0 0 30 2 *\": never fires: none of the selected months has any of the "
            "selected days of the month");
  EXPECT_EQ(ParseError("0 0 31 APR,JUN,SEP,NOV *"),
            "cron \"0 0 31 APR,JUN,SEP,NOV *\": never fires: none of the selected months has any "
            "of the selected days of the month");
  // Leap days happen; with a weekday too, any Monday matches.
  EXPECT_EQ(ParseError("0 0 29 2 *"), "parsed");
  EXPECT_EQ(ParseError("0 0 30 2 MON"), "parsed");
}

// --- Calendar ---------------------------------------------------------------

TEST(CronScheduleTest, ThirtyFirstSkipsShortMonths) {
  EXPECT_THAT(
      FiresUtc("0 0 31 * *", Utc(2024, 1, 31, 0, 0), 6),
      ElementsAre("Sun 2024-03-31 00:00:00", "Fri 2024-05-31 00:00:00", "Wed 2024-07-31 00:00:00",
                  "Sat 2024-08-31 00:00:00", "Thu 2024-10-31 00:00:00", "Tue 2024-12-31 00:00:00"));
  EXPECT_THAT(FiresUtc("0 0 30 * *", Utc(2023, 1, 30, 0, 0), 1),
              ElementsAre("Thu 2023-03-30 00:00:00"));
}

TEST(CronScheduleTest, LeapDayFiresOnlyInLeapYears) {
  EXPECT_THAT(
      FiresUtc("0 0 29 2 *", Utc(2023, 1, 1, 0, 0), 3),
      ElementsAre("Thu 2024-02-29 00:00:00", "Tue 2028-02-29 00:00:00", "Sun 2032-02-29 00:00:00"));
  // 2100 is not a leap year: eight years between leap days.
  EXPECT_THAT(FiresUtc("0 0 29 2 *", Utc(2096, 3, 1, 0, 0), 1),
              ElementsAre("Fri 2104-02-29 00:00:00"));
}

TEST(CronScheduleTest, CrossesTheYearEnd) {
  EXPECT_THAT(FiresUtc("59 23 31 12 *", Utc(2024, 12, 31, 23, 59), 1),
              ElementsAre("Wed 2025-12-31 23:59:00"));
  EXPECT_THAT(FiresUtc("0 0 1 1 *", Utc(2024, 12, 31, 23, 59, 59), 1),
              ElementsAre("Wed 2025-01-01 00:00:00"));
  EXPECT_THAT(FiresUtc("* * * * *", Utc(2024, 12, 31, 23, 59, 30), 1),
              ElementsAre("Wed 2025-01-01 00:00:00"));
}

TEST(CronScheduleTest, RestrictedDayOfMonthAndWeekMatchEither) {
  EXPECT_THAT(
      FiresUtc("0 0 13 * FRI", Utc(2024, 10, 1, 0, 0), 5),
      ElementsAre("Fri 2024-10-04 00:00:00", "Fri 2024-10-11 00:00:00", "Sun 2024-10-13 00:00:00",
                  "Fri 2024-10-18 00:00:00", "Fri 2024-10-25 00:00:00"));
  // A step is a restriction too; only a lone * is not.
  EXPECT_THAT(FiresUtc("0 0 */10 * MON", Utc(2024, 1, 1, 0, 0), 4),
              ElementsAre("Mon 2024-01-08 00:00:00", "Thu 2024-01-11 00:00:00",
                          "Mon 2024-01-15 00:00:00", "Sun 2024-01-21 00:00:00"));
}

TEST(CronScheduleTest, OneRestrictedDayFieldAloneDecides) {
  EXPECT_THAT(FiresUtc("0 0 13 * *", Utc(2024, 10, 1, 0, 0), 2),
              ElementsAre("Sun 2024-10-13 00:00:00", "Wed 2024-11-13 00:00:00"));
  EXPECT_THAT(FiresUtc("0 0 * * FRI", Utc(2024, 10, 1, 0, 0), 2),
              ElementsAre("Fri 2024-10-04 00:00:00", "Fri 2024-10-11 00:00:00"));
  // Both restricted but within one month only: Fridays or the 13th, in December.
  EXPECT_THAT(
      FiresUtc("0 0 13 12 FRI", Utc(2024, 10, 1, 0, 0), 3),
      ElementsAre("Fri 2024-12-06 00:00:00", "Fri 2024-12-13 00:00:00", "Fri 2024-12-20 00:00:00"));
}

// --- Time zones and daylight saving -----------------------------------------

// New York 2024: EST (-5) until 03-10 02:00 -> 03:00 EDT (-4); back at 11-03
// 02:00 EDT -> 01:00 EST.
TEST(CronScheduleTest, NewYorkSpringForwardFiresSkippedTimeOnceAtEndOfGap) {
  EXPECT_THAT(Fires("30 2 * * *", "America/New_York", Utc(2024, 3, 9, 0, 0), 3),
              ElementsAre("Sat 2024-03-09 07:30:00",    // 02:30 EST
                          "Sun 2024-03-10 07:00:00",    // 02:30 does not exist: 03:00 EDT
                          "Mon 2024-03-11 06:30:00"));  // 02:30 EDT
  // Every skipped minute lands on 03:00 EDT; it fires once.
  EXPECT_THAT(Fires("*/15 2 * * *", "America/New_York", Utc(2024, 3, 10, 6, 0), 2),
              ElementsAre("Sun 2024-03-10 07:00:00", "Mon 2024-03-11 06:00:00"));
  EXPECT_THAT(Fires("*/30 * * * *", "America/New_York", Utc(2024, 3, 10, 5, 45), 4),
              ElementsAre("Sun 2024-03-10 06:00:00",    // 01:00 EST
                          "Sun 2024-03-10 06:30:00",    // 01:30 EST
                          "Sun 2024-03-10 07:00:00",    // 02:00-02:30 skipped, and 03:00 EDT
                          "Sun 2024-03-10 07:30:00"));  // 03:30 EDT
}

TEST(CronScheduleTest, NewYorkFallBackFiresRepeatedTimeOnceAtFirstOccurrence) {
  EXPECT_THAT(Fires("30 1 * * *", "America/New_York", Utc(2024, 11, 2, 0, 0), 3),
              ElementsAre("Sat 2024-11-02 05:30:00",    // 01:30 EDT
                          "Sun 2024-11-03 05:30:00",    // 01:30 EDT, not again at 01:30 EST
                          "Mon 2024-11-04 06:30:00"));  // 01:30 EST
  // From inside the second occurrence, the next fire is the next day's.
  EXPECT_THAT(Fires("30 1 * * *", "America/New_York", Utc(2024, 11, 3, 6, 10), 1),
              ElementsAre("Mon 2024-11-04 06:30:00"));
  EXPECT_THAT(Fires("*/30 * * * *", "America/New_York", Utc(2024, 11, 3, 4, 45), 4),
              ElementsAre("Sun 2024-11-03 05:00:00",  // 01:00 EDT
                          "Sun 2024-11-03 05:30:00",  // 01:30 EDT
                          "Sun 2024-11-03 07:00:00",  // 02:00 EST; 01:xx EST are repeats
                          "Sun 2024-11-03 07:30:00"));
}

// Berlin 2024: CET (+1) until 03-31 02:00 -> 03:00 CEST (+2); back at 10-27
// 03:00 CEST -> 02:00 CET.
TEST(CronScheduleTest, BerlinSpringForwardAndFallBack) {
  EXPECT_THAT(Fires("30 2 * * *", "Europe/Berlin", Utc(2024, 3, 30, 0, 0), 3),
              ElementsAre("Sat 2024-03-30 01:30:00",    // 02:30 CET
                          "Sun 2024-03-31 01:00:00",    // 02:30 does not exist: 03:00 CEST
                          "Mon 2024-04-01 00:30:00"));  // 02:30 CEST
  EXPECT_THAT(Fires("30 2 * * *", "Europe/Berlin", Utc(2024, 10, 26, 0, 0), 3),
              ElementsAre("Sat 2024-10-26 00:30:00",    // 02:30 CEST
                          "Sun 2024-10-27 00:30:00",    // 02:30 CEST, not again at 02:30 CET
                          "Mon 2024-10-28 01:30:00"));  // 02:30 CET
}

TEST(CronScheduleTest, HalfHourOffsetZone) {
  // Kolkata is UTC+05:30 all year.
  EXPECT_THAT(Fires("0 9 * * *", "Asia/Kolkata", Utc(2024, 6, 1, 0, 0), 2),
              ElementsAre("Sat 2024-06-01 03:30:00", "Sun 2024-06-02 03:30:00"));
  // Its new year comes while it is still the old one in UTC.
  EXPECT_THAT(Fires("@yearly", "Asia/Kolkata", Utc(2024, 6, 1, 0, 0), 1),
              ElementsAre("Tue 2024-12-31 18:30:00"));
  // Day-of-week is the local day: Monday 00:15 there is Sunday in UTC.
  EXPECT_THAT(Fires("15 0 * * MON", "Asia/Kolkata", Utc(2024, 6, 1, 0, 0), 1),
              ElementsAre("Sun 2024-06-02 18:45:00"));
}

// --- Downtime -----------------------------------------------------------------

absl::Time AfterDowntime(std::string_view expression, std::string_view zone, absl::Time last_fire,
                         absl::Time now) {
  absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse(expression, zone);
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  if (!schedule.ok()) return absl::InfinitePast();
  return schedule->NextRunAfterDowntime(last_fire, now);
}

TEST(CronScheduleDowntimeTest, NothingMissedGivesTheNextFireTime) {
  EXPECT_EQ(
      Format(AfterDowntime("0 * * * *", "UTC", Utc(2024, 1, 1, 10, 0), Utc(2024, 1, 1, 10, 30))),
      "Mon 2024-01-01 11:00:00");
}

TEST(CronScheduleDowntimeTest, OneMissedRunsOnceNow) {
  EXPECT_EQ(
      Format(AfterDowntime("0 * * * *", "UTC", Utc(2024, 1, 1, 10, 0), Utc(2024, 1, 1, 11, 30))),
      "Mon 2024-01-01 11:00:00");
  // A fire time equal to now counts as missed: it is due.
  EXPECT_EQ(
      Format(AfterDowntime("0 * * * *", "UTC", Utc(2024, 1, 1, 10, 0), Utc(2024, 1, 1, 11, 0))),
      "Mon 2024-01-01 11:00:00");
}

TEST(CronScheduleDowntimeTest, ManyMissedCollapseIntoTheLatest) {
  const absl::Time now = Utc(2024, 1, 5, 15, 45);
  const absl::Time run = AfterDowntime("0 * * * *", "UTC", Utc(2024, 1, 1, 10, 0), now);
  EXPECT_EQ(Format(run), "Fri 2024-01-05 15:00:00");
  // Recorded as the last fire, it leads back to the regular schedule.
  EXPECT_EQ(Format(AfterDowntime("0 * * * *", "UTC", run, now)), "Fri 2024-01-05 16:00:00");
  // Years of a yearly schedule: still one run.
  EXPECT_EQ(Format(AfterDowntime("@yearly", "UTC", Utc(2015, 1, 1, 0, 0), now)),
            "Mon 2024-01-01 00:00:00");
}

TEST(CronScheduleDowntimeTest, MissedTimesFollowTheDaylightSavingRules) {
  // The spring-forward day's 02:30 fired at 03:00 EDT (07:00 UTC).
  EXPECT_EQ(Format(AfterDowntime("30 2 * * *", "America/New_York", Utc(2024, 3, 9, 7, 30),
                                 Utc(2024, 3, 10, 12, 0))),
            "Sun 2024-03-10 07:00:00");
  // Back during the repeated hour, at 01:45 EST (06:45 UTC): 01:50 is later
  // on the wall clock, but its first occurrence, 01:50 EDT (05:50 UTC), has
  // passed, and its repeat does not fire.
  EXPECT_EQ(Format(AfterDowntime("50 * * * *", "America/New_York", Utc(2024, 11, 3, 4, 50),
                                 Utc(2024, 11, 3, 6, 45))),
            "Sun 2024-11-03 05:50:00");
  EXPECT_EQ(Format(AfterDowntime("50 * * * *", "America/New_York", Utc(2024, 11, 3, 5, 50),
                                 Utc(2024, 11, 3, 6, 55))),
            "Sun 2024-11-03 07:50:00");
}

}  // namespace
}  // namespace flowork::agent
