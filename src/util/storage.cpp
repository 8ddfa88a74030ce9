#include "util/storage.h"

#include <cerrno>
#include <cstring>

namespace tern {

namespace {
constexpr std::string_view storage_full_prefix = "insufficient storage: ";
}

bool is_storage_full(int err) { return err == ENOSPC || err == EDQUOT; }

std::string storage_full_error(std::string_view text) {
	if (is_storage_full_error(text)) return std::string(text);
	return std::string(storage_full_prefix) + std::string(text);
}

bool is_storage_full_error(std::string_view text) {
	return text.substr(0, storage_full_prefix.size()) == storage_full_prefix;
}

std::string system_error_text(std::string_view what, int err) {
	std::string text = std::string(what) + ": " + std::strerror(err);
	return is_storage_full(err) ? storage_full_error(text) : text;
}

}  // namespace tern
