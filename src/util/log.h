// logfmt event logger: one line per event, `ts=… level=… cid=… msg="…" k=v`.
// Writes to stderr, a file (reopened on SIGUSR1) or syslog. Thread-safe: the
// worker pool logs too.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace tern::log {

// Ordered from least to most verbose (doc/behaviour.md "-l" levels). warn is not a
// level to select: its lines show wherever info lines do.
enum class Level { error = 0, warn, info, debug, trace, traceauth, tracedata };

// Parses "error", "info", ... ; returns false for an unknown name (and for
// "warn", which cannot be selected).
bool parse_level(std::string_view name, Level& out);
std::string_view level_name(Level);

enum class Sink { stderr_sink, file, syslog };

// Global configuration (set by ternd at start and on reload).
void set_level(Level);
Level level();
bool enabled(Level);
// For Sink::file, `path` names the file (opened in append mode).
// Returns false (and keeps the previous sink) when the file cannot be opened.
bool set_sink(Sink, const std::string& path = {});
// SIGUSR1: reopen the log file (no-op for other sinks). Takes a mutex: call
// it from the event loop's signal watcher, not from a signal handler.
// Returns false (and keeps writing to the old file) when it cannot be opened.
bool reopen();

using Field = std::pair<std::string_view, std::string>;

// Emits one logfmt line. cid 0 means "no connection" (field omitted); the cid
// is written in lower-case hex (`cid=1a2b`), everywhere the same.
// Values are quoted when they hold spaces, quotes, `=` or control bytes.
// stderr and file lines start with `ts=` (UTC, milliseconds); syslog stamps
// lines itself, so there the `ts=` field is left out.
void event(Level, uint64_t cid, std::string_view msg, std::initializer_list<Field> fields = {});

inline void error(std::string_view msg, std::initializer_list<Field> f = {}) { event(Level::error, 0, msg, f); }
inline void warn(std::string_view msg, std::initializer_list<Field> f = {}) { event(Level::warn, 0, msg, f); }
inline void info(std::string_view msg, std::initializer_list<Field> f = {}) { event(Level::info, 0, msg, f); }
inline void debug(std::string_view msg, std::initializer_list<Field> f = {}) { event(Level::debug, 0, msg, f); }

// An event that can repeat many times a second for as long as its cause
// lasts (a listener out of descriptors pausing again and again): the first
// occurrence, and then one per `interval` seconds, is worth a line at error
// level, the others a debug line, so the log says it without filling up.
class RepeatedEvent {
public:
	explicit RepeatedEvent(double interval) : interval_(interval) {}
	// Counts an occurrence at `now` (seconds, on a clock that does not go
	// back) and says the level of its line.
	Level occurred(double now) {
		if (error_line_seen_ && now - last_error_line_ < interval_) return Level::debug;
		error_line_seen_ = true;
		last_error_line_ = now;
		return Level::error;
	}

private:
	double interval_;
	bool error_line_seen_ = false;
	double last_error_line_ = 0;
};

// Formats one logfmt line without the trailing newline (pure; unit-tested).
std::string format_line(std::string_view ts, Level, uint64_t cid, std::string_view msg,
                        std::initializer_list<Field> fields);

}  // namespace tern::log
