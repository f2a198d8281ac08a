#ifndef FLOWORK_AGENT_CRON_SCHEDULE_H_
#define FLOWORK_AGENT_CRON_SCHEDULE_H_

#include <bitset>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace flowork::agent {

// When a recurring task fires: a standard 5-field cron expression
// ("minute hour day-of-month month day-of-week") read as wall-clock time in
// an IANA time zone.
//
// Syntax per field: `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and
// `a-b/n`; month names JAN-DEC and day names SUN-SAT (any case); 7 is also
// Sunday. Macros: @yearly (= @annually), @monthly, @weekly, @daily
// (= @midnight), @hourly. Quartz extensions (L, W, #, ?), seconds and years
// are not supported.
//
// Days follow Vixie cron: when both day-of-month and day-of-week are
// restricted (anything but a lone `*`), a day matches when either matches;
// otherwise both must.
//
// Daylight-saving changes: a wall-clock time skipped when clocks jump forward
// fires once, at the first instant after the gap (02:30 on the spring-forward
// day fires at 03:00); a wall-clock time that occurs twice when clocks go back
// fires once, at its first occurrence. A schedule that fires every few
// minutes therefore pauses for the repeated hour.
//
// A value type: immutable once parsed; thread-safe to share and copy.
class CronSchedule {
 public:
  // `time_zone` is an IANA name such as "Europe/Berlin"; empty means "UTC".
  // kInvalidArgument naming the field and the bad token
  // (`cron "61 * * * *": minute: 61 is out of range 0-59`), for the wrong
  // number of fields, an unknown macro or time zone, or an expression that
  // can never fire (`0 0 30 2 *`).
  static absl::StatusOr<CronSchedule> Parse(std::string_view expression,
                                            std::string_view time_zone);

  // The first fire time strictly after `t`. Skips whole months, days and
  // hours, so the cost does not grow with the gap between fires.
  // InfiniteFuture() for an infinite `t`.
  absl::Time NextAfter(absl::Time t) const;

  // When to run next after a downtime, without a catch-up storm. If one or
  // more fire times fell in (last_fire, now], returns the latest of them,
  // once: it is at or before `now`, so the caller runs it now and then
  // records it as its new `last_fire`. Otherwise returns NextAfter(last_fire),
  // which is after `now`. Fire times missed before the latest are dropped.
  // A schedule that never fired passes the time it was created as
  // `last_fire`: an infinite one gives InfiniteFuture(), never a run.
  absl::Time NextRunAfterDowntime(absl::Time last_fire, absl::Time now) const;

  // The expression as given to Parse.
  std::string expression() const { return expression_; }

  // The time zone's name; "UTC" when Parse was given an empty one.
  std::string time_zone() const { return time_zone_; }

 private:
  CronSchedule() = default;

  bool DayMatches(absl::CivilDay day) const;
  // The first matching wall-clock minute at or after `from`, or at or before.
  absl::CivilMinute FirstMatchAtOrAfter(absl::CivilMinute from) const;
  absl::CivilMinute LastMatchAtOrBefore(absl::CivilMinute from) const;
  // The instant a matching wall-clock minute fires at, by the DST rules above.
  absl::Time FireTime(absl::CivilMinute minute) const;

  std::string expression_;
  std::string time_zone_;
  absl::TimeZone zone_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // Bits 1-31.
  std::bitset<13> months_;         // Bits 1-12.
  std::bitset<7> days_of_week_;    // Bit 0 is Sunday.
  bool day_of_month_restricted_ = false;
  bool day_of_week_restricted_ = false;
};

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_CRON_SCHEDULE_H_
