#include "flowork/agent/cron_schedule.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;
using core::internal::ToStd;

constexpr std::array<std::string_view, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kDayNames = {"SUN", "MON", "TUE", "WED",
                                                       "THU", "FRI", "SAT"};

// The longest each month can be; February counts its leap day.
constexpr std::array<int, 13> kMaxDaysInMonth = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

// One of the five fields and the values it accepts.
struct Field {
  std::string_view name;
  int min;
  int max;
  // `*` spans min..star_max: day-of-week accepts 7 for Sunday but `*` stops at 6.
  int star_max;
  // Names for the values from name_base on; empty when the field has none.
  const std::string_view* names;
  int name_count;
  int name_base;
};

constexpr Field kMinute = {"minute", 0, 59, 59, nullptr, 0, 0};
constexpr Field kHour = {"hour", 0, 23, 23, nullptr, 0, 0};
constexpr Field kDayOfMonth = {"day-of-month", 1, 31, 31, nullptr, 0, 0};
constexpr Field kMonth = {"month", 1, 12, 12, kMonthNames.data(), 12, 1};
constexpr Field kDayOfWeek = {"day-of-week", 0, 7, 6, kDayNames.data(), 7, 0};

struct Macro {
  std::string_view name;
  std::string_view expansion;
};

constexpr std::array<Macro, 7> kMacros = {{
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
}};

absl::Status FieldError(const Field& field, std::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(ToAbsl(field.name), ": ", ToAbsl(detail)));
}

bool IsAllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Quartz's L (last), W (nearest weekday), # (nth weekday) and ? (no value)
// look like cron but mean something else; say so rather than "unknown name".
bool IsQuartzExtension(std::string_view token) {
  if (token.find_first_of("#?") != std::string_view::npos) return true;
  std::string upper = absl::AsciiStrToUpper(ToAbsl(token));
  if (upper == "L" || upper == "LW") return true;
  if (upper.size() < 2) return false;
  const char last = upper.back();
  return (last == 'L' || last == 'W') &&
         IsAllDigits(std::string_view(upper).substr(0, upper.size() - 1));
}

absl::StatusOr<int> ParseValue(const Field& field, std::string_view token) {
  if (token.empty()) return FieldError(field, "empty value");
  if (IsAllDigits(token)) {
    int value = 0;
    if (!absl::SimpleAtoi(ToAbsl(token), &value) || value < field.min || value > field.max) {
      return FieldError(
          field, absl::StrCat(ToAbsl(token), " is out of range ", field.min, "-", field.max));
    }
    return value;
  }
  if (IsQuartzExtension(token)) {
    return FieldError(field, absl::StrCat("\"", ToAbsl(token),
                                          "\" is not supported (L, W, # and ? are Quartz "
                                          "extensions, not cron)"));
  }
  if (field.name_count == 0) {
    return FieldError(field, absl::StrCat("\"", ToAbsl(token), "\" is not a number"));
  }
  const std::string upper = absl::AsciiStrToUpper(ToAbsl(token));
  for (int i = 0; i < field.name_count; ++i) {
    if (upper == field.names[i]) return field.name_base + i;
  }
  return FieldError(field, absl::StrCat("unknown name \"", ToAbsl(token), "\""));
}

// Sets the bits of one list element: `*`, `v`, `a-b`, `*/n` or `a-b/n`.
absl::Status ParseElement(const Field& field, std::string_view element, uint64_t& bits) {
  if (element.empty()) return FieldError(field, "empty list element");
  std::string_view range = element;
  int step = 1;
  const size_t slash = element.find('/');
  if (slash != std::string_view::npos) {
    range = element.substr(0, slash);
    const std::string_view step_text = element.substr(slash + 1);
    const int max_step = field.star_max - field.min;
    if (!IsAllDigits(step_text)) {
      return FieldError(field, absl::StrCat("bad step \"", ToAbsl(step_text), "\" in \"",
                                            ToAbsl(element), "\" (want a number)"));
    }
    if (!absl::SimpleAtoi(ToAbsl(step_text), &step) || step < 1 || step > max_step) {
      return FieldError(field, absl::StrCat("step ", ToAbsl(step_text), " in \"", ToAbsl(element),
                                            "\" is out of range 1-", max_step));
    }
  }

  int first = 0;
  int last = 0;
  if (range == "*") {
    first = field.min;
    last = field.star_max;
  } else if (const size_t dash = range.find('-'); dash != std::string_view::npos) {
    const std::string_view low = range.substr(0, dash);
    const std::string_view high = range.substr(dash + 1);
    if (low.empty() || high.empty() || high.find('-') != std::string_view::npos) {
      return FieldError(field, absl::StrCat("bad range \"", ToAbsl(range), "\" (want a-b)"));
    }
    FLOWORK_ASSIGN_OR_RETURN(first, ParseValue(field, low));
    FLOWORK_ASSIGN_OR_RETURN(last, ParseValue(field, high));
    if (first > last) {
      return FieldError(field, absl::StrCat("range \"", ToAbsl(range), "\" starts after it ends"));
    }
  } else {
    if (slash != std::string_view::npos) {
      return FieldError(field, absl::StrCat("step in \"", ToAbsl(element),
                                            "\" needs * or a range a-b before it"));
    }
    FLOWORK_ASSIGN_OR_RETURN(first, ParseValue(field, range));
    last = first;
  }
  for (int v = first; v <= last; v += step) bits |= uint64_t{1} << v;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ParseField(const Field& field, std::string_view text) {
  uint64_t bits = 0;
  for (absl::string_view element : absl::StrSplit(ToAbsl(text), ',')) {
    FLOWORK_RETURN_IF_ERROR(ParseElement(field, ToStd(element), bits));
  }
  return bits;
}

// absl::LoadTimeZone also reads absolute paths and "file:" names; a schedule
// names a zone, never a file.
bool LooksLikeZoneName(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '-' &&
        c != '+') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<CronSchedule> CronSchedule::Parse(std::string_view expression,
                                                 std::string_view time_zone) {
  auto invalid = [expression](absl::string_view detail) {
    return absl::InvalidArgumentError(absl::StrCat("cron \"", ToAbsl(expression), "\": ", detail));
  };

  std::vector<absl::string_view> fields =
      absl::StrSplit(ToAbsl(expression), absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (!fields.empty() && fields[0].front() == '@') {
    if (fields.size() != 1) {
      return invalid(absl::StrCat(fields[0], " takes no fields after it, got ", fields.size() - 1));
    }
    const std::string name = absl::AsciiStrToLower(fields[0]);
    const Macro* macro = nullptr;
    for (const Macro& candidate : kMacros) {
      if (name == candidate.name) macro = &candidate;
    }
    if (macro == nullptr) {
      return invalid(absl::StrCat("unknown macro \"", fields[0],
                                  "\" (use @yearly, @annually, @monthly, @weekly, @daily, "
                                  "@midnight or @hourly)"));
    }
    std::vector<absl::string_view> expanded = absl::StrSplit(ToAbsl(macro->expansion), ' ');
    fields = std::move(expanded);
  }
  if (fields.size() != 5) {
    return invalid(absl::StrCat(
        "expected 5 fields (minute hour day-of-month month day-of-week), got ", fields.size()));
  }

  CronSchedule schedule;
  schedule.expression_ = std::string(expression);
  const std::array<const Field*, 5> kinds = {&kMinute, &kHour, &kDayOfMonth, &kMonth, &kDayOfWeek};
  std::array<uint64_t, 5> bits{};
  for (size_t i = 0; i < kinds.size(); ++i) {
    absl::StatusOr<uint64_t> parsed = ParseField(*kinds[i], ToStd(fields[i]));
    if (!parsed.ok()) return invalid(parsed.status().message());
    bits[i] = *parsed;
  }
  // 7 is Sunday too.
  if (bits[4] & (uint64_t{1} << 7)) bits[4] = (bits[4] | 1) & ~(uint64_t{1} << 7);
  schedule.minutes_ = std::bitset<60>(bits[0]);
  schedule.hours_ = std::bitset<24>(bits[1]);
  schedule.days_of_month_ = std::bitset<32>(bits[2]);
  schedule.months_ = std::bitset<13>(bits[3]);
  schedule.days_of_week_ = std::bitset<7>(bits[4]);
  schedule.day_of_month_restricted_ = fields[2] != "*";
  schedule.day_of_week_restricted_ = fields[4] != "*";

  // With both day fields restricted either may match, and every month has
  // every weekday; otherwise some selected month must have a selected day.
  if (!schedule.day_of_week_restricted_) {
    bool can_fire = false;
    for (int month = 1; month <= 12; ++month) {
      if (!schedule.months_[month]) continue;
      for (int day = 1; day <= kMaxDaysInMonth[month]; ++day) {
        can_fire = can_fire || schedule.days_of_month_[day];
      }
    }
    if (!can_fire) {
      return invalid(
          "never fires: none of the selected months has any of the selected days of the month");
    }
  }

  schedule.time_zone_ = time_zone.empty() ? "UTC" : std::string(time_zone);
  if (!LooksLikeZoneName(schedule.time_zone_) ||
      !absl::LoadTimeZone(schedule.time_zone_, &schedule.zone_)) {
    return invalid(absl::StrCat("unknown time zone \"", schedule.time_zone_, "\""));
  }
  return schedule;
}

absl::Time CronSchedule::NextAfter(absl::Time t) const {
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) return absl::InfiniteFuture();
  absl::CivilMinute minute = absl::ToCivilMinute(t, zone_);
  // A repeated wall-clock minute fires at its first occurrence, which may be
  // at or before `t` when `t` is in the second; move on past those. Bounded
  // by the matching minutes of one overlap.
  while (true) {
    minute = FirstMatchAtOrAfter(minute);
    const absl::Time fire = FireTime(minute);
    if (fire > t) return fire;
    minute += 1;
  }
}

absl::Time CronSchedule::NextRunAfterDowntime(absl::Time last_fire, absl::Time now) const {
  const absl::Time next = NextAfter(last_fire);
  if (next > now) return next;
  // At least one fire time was missed: the latest one at or before `now`.
  absl::CivilMinute minute = absl::ToCivilMinute(now, zone_);
  // In the second run of a repeated hour, the rest of that hour's wall-clock
  // minutes fired at their first occurrence, before `now`: search from its end.
  const absl::TimeZone::TimeInfo info = zone_.At(minute);
  if (info.kind == absl::TimeZone::TimeInfo::REPEATED && now >= info.trans) {
    minute = absl::ToCivilMinute(info.trans - absl::Nanoseconds(1), zone_);
  }
  // From there FireTime never lands after `now`; the loop only guards that.
  while (true) {
    minute = LastMatchAtOrBefore(minute);
    const absl::Time fire = FireTime(minute);
    if (fire <= now) return fire;
    minute -= 1;
  }
}

bool CronSchedule::DayMatches(absl::CivilDay day) const {
  // absl numbers weekdays from Monday = 0, cron from Sunday = 0.
  const int weekday = (static_cast<int>(absl::GetWeekday(day)) + 1) % 7;
  const bool day_of_month = days_of_month_[day.day()];
  const bool day_of_week = days_of_week_[weekday];
  if (day_of_month_restricted_ && day_of_week_restricted_) return day_of_month || day_of_week;
  return day_of_month && day_of_week;
}

// Parse rejects schedules that never fire, so both searches end: at worst
// they cross eight years to the next February 29th.
absl::CivilMinute CronSchedule::FirstMatchAtOrAfter(absl::CivilMinute from) const {
  absl::CivilMinute m = from;
  while (true) {
    if (!months_[m.month()]) {
      m = absl::CivilMinute(absl::CivilMonth(m) + 1);
    } else if (!DayMatches(absl::CivilDay(m))) {
      m = absl::CivilMinute(absl::CivilDay(m) + 1);
    } else if (!hours_[m.hour()]) {
      m = absl::CivilMinute(absl::CivilHour(m) + 1);
    } else if (!minutes_[m.minute()]) {
      m += 1;
    } else {
      return m;
    }
  }
}

absl::CivilMinute CronSchedule::LastMatchAtOrBefore(absl::CivilMinute from) const {
  absl::CivilMinute m = from;
  while (true) {
    if (!months_[m.month()]) {
      m = absl::CivilMinute(absl::CivilMonth(m)) - 1;
    } else if (!DayMatches(absl::CivilDay(m))) {
      m = absl::CivilMinute(absl::CivilDay(m)) - 1;
    } else if (!hours_[m.hour()]) {
      m = absl::CivilMinute(absl::CivilHour(m)) - 1;
    } else if (!minutes_[m.minute()]) {
      m -= 1;
    } else {
      return m;
    }
  }
}

absl::Time CronSchedule::FireTime(absl::CivilMinute minute) const {
  const absl::TimeZone::TimeInfo info = zone_.At(minute);
  // Skipped (spring forward): the first instant after the gap. Repeated (fall
  // back): the first occurrence. Unique: pre is the instant.
  return info.kind == absl::TimeZone::TimeInfo::SKIPPED ? info.trans : info.pre;
}

}  // namespace flowork::agent
