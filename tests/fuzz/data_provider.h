// Splits a fuzz input into typed values, with the same byte-consumption
// rules as libFuzzer's documented FuzzedDataProvider (integers and booleans
// from the end of the input, strings from the front), so that saved inputs
// mean the same thing to the libFuzzer build and to the g++ replay build
// (tests/fuzz/replay_main.cpp), which has no clang headers.
#pragma once
#include <climits>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

namespace tern::fuzz {

class DataProvider {
public:
	DataProvider(const uint8_t* data, size_t size) : data_(data), remaining_(size) {}

	// An integer in [min, max] built from as many trailing bytes as the
	// range needs; 0 + min when the input is used up.
	template <typename T>
	T ConsumeIntegralInRange(T min, T max) {
		static_assert(std::is_integral_v<T>);
		uint64_t range = static_cast<uint64_t>(max) - static_cast<uint64_t>(min);
		uint64_t result = 0;
		size_t bits = 0;
		while (bits < sizeof(T) * CHAR_BIT && (range >> bits) > 0 && remaining_ != 0) {
			remaining_--;
			result = (result << CHAR_BIT) | data_[remaining_];
			bits += CHAR_BIT;
		}
		if (range != std::numeric_limits<uint64_t>::max()) result = result % (range + 1);
		return static_cast<T>(static_cast<uint64_t>(min) + result);
	}

	template <typename T>
	T ConsumeIntegral() {
		return ConsumeIntegralInRange<T>(std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
	}

	bool ConsumeBool() { return (ConsumeIntegral<uint8_t>() & 1) != 0; }

	// A value in [0, 1].
	template <typename T>
	T ConsumeProbability() {
		static_assert(std::is_floating_point_v<T>);
		using Bits = std::conditional_t<(sizeof(T) <= sizeof(uint32_t)), uint32_t, uint64_t>;
		return static_cast<T>(ConsumeIntegral<Bits>()) / static_cast<T>(std::numeric_limits<Bits>::max());
	}

	// Up to max_length bytes from the front. A backslash followed by
	// another backslash stands for one backslash; followed by anything else
	// it ends the string (both bytes consumed), which lets an input choose
	// the length.
	std::string ConsumeRandomLengthString(size_t max_length) {
		std::string out;
		for (size_t i = 0; i < max_length && remaining_ != 0; i++) {
			char next = static_cast<char>(take_front());
			if (next == '\\' && remaining_ != 0) {
				next = static_cast<char>(take_front());
				if (next != '\\') break;
			}
			out.push_back(next);
		}
		return out;
	}

	std::string ConsumeRemainingBytesAsString() {
		std::string out(reinterpret_cast<const char*>(data_), remaining_);
		data_ += remaining_;
		remaining_ = 0;
		return out;
	}

private:
	uint8_t take_front() {
		uint8_t byte = data_[0];
		data_++;
		remaining_--;
		return byte;
	}

	const uint8_t* data_;
	size_t remaining_;
};

}  // namespace tern::fuzz
