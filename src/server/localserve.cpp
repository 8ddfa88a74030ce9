#include "server/localserve.h"

namespace tern::server {

LocalserveFailure localserve_failure(std::string_view lp) {
	if (lp.ends_with("temperror")) return {451, false};
	if (lp.ends_with("permerror")) return {550, false};
	if (lp.ends_with("timeout")) return {0, true};
	if (lp.size() < 3) return {};
	std::string_view tail = lp.substr(lp.size() - 3);
	int v = 0;
	for (char ch : tail) {
		if (ch < '0' || ch > '9') return {};
		v = v * 10 + (ch - '0');
	}
	if (v < 400 || v > 600) return {};
	return {v, false};
}

}  // namespace tern::server
