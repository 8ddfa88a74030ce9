// The failure value of a recursive-descent reader whose steps report errors
// by return value instead of exceptions: a step that fails records why in
// its reader and returns `Failed{}`, which converts to `false` for a step
// that returns bool and to an empty optional for one that returns a value,
// so every step ends a failure with `return fail(...)` and its caller
// checks the result and returns at once. It converts to nothing else (not
// to 0 through bool), so a failure cannot pass as a value.
#pragma once
#include <optional>
#include <type_traits>

namespace tern {

namespace detail {
template <class T>
constexpr bool is_optional = false;
template <class T>
constexpr bool is_optional<std::optional<T>> = true;
}  // namespace detail

struct Failed {
	template <class T>
	requires(std::is_same_v<T, bool> || detail::is_optional<T>) operator T() const { return T{}; }
};

}  // namespace tern
