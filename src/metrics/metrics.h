// The metrics tern exposes (doc/behaviour.md "Metrics (names exact)") and their
// rendering in the Prometheus text exposition format 0.0.4. The values live
// in core::Stats (lower layers count there); this layer owns the names'
// types, help texts and fixed label names.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "core/stats.h"

namespace tern::metrics {

enum class Type { counter, gauge, histogram };

struct Family {
	std::string name;
	Type type;
	std::string help;
	std::vector<std::string> label_names;
};

// Every family tern defines, sorted by name.
const std::vector<Family>& families();

// The /metrics page: for each family (sorted by name) its HELP and TYPE
// lines, then its series sorted by label values. A family without series
// still shows its HELP and TYPE lines; an unlabelled gauge or counter
// without a sampler shows 0. Series whose label count does not match the
// family's are skipped.
std::string render(const core::Stats& stats);

// Label value escaping of the format: backslash, double quote, newline.
std::string escape_label_value(std::string_view value);
// Sample values: integers as such, others shortest round-trip, +Inf, -Inf, NaN.
std::string format_value(double value);

}  // namespace tern::metrics
