// The connection table: owns every connection object of the loop thread and
// hands out generation-checked handles. Async completions (DNS answers,
// worker results) carry a ConnHandle, never a pointer; `get` returns nullptr
// once the connection is gone or its slot was reused (doc/design.md "one
// lifetime rule").
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace tern::core {

struct ConnHandle {
	uint32_t slot = UINT32_MAX;
	uint32_t generation = 0;
	bool valid() const { return slot != UINT32_MAX; }
	bool operator==(const ConnHandle&) const = default;
};

template <class T>
class ConnTable {
public:
	ConnHandle insert(std::unique_ptr<T> obj) {
		// An empty slot would count as live yet never be erasable.
		if (!obj) return ConnHandle{};
		uint32_t slot;
		if (!free_.empty()) {
			slot = free_.back();
			free_.pop_back();
		} else {
			slot = static_cast<uint32_t>(slots_.size());
			slots_.emplace_back();
		}
		Slot& s = slots_[slot];
		s.obj = std::move(obj);
		++live_;
		return ConnHandle{slot, s.generation};
	}
	T* get(ConnHandle h) const {
		if (h.slot >= slots_.size()) return nullptr;
		const Slot& s = slots_[h.slot];
		if (s.generation != h.generation || !s.obj || s.doomed) return nullptr;
		return s.obj.get();
	}
	// Runs f(T&) if the handle is live. Visits may nest; an erase during a
	// visit makes the handle stale at once, but the object is destroyed
	// only when the outermost visit returns, so no call into it is still
	// running when it goes (doc/design.md "One lifetime rule").
	template <class F>
	void visit(ConnHandle h, F&& f) {
		T* obj = get(h);
		if (!obj) return;
		struct Frame {
			ConnTable& table;
			uint32_t slot;
			explicit Frame(ConnTable& t, uint32_t s) : table(t), slot(s) { ++table.slots_[slot].frames; }
			~Frame() {
				Slot& s = table.slots_[slot];
				if (--s.frames == 0 && s.doomed) table.release(slot);
			}
		} frame(*this, h.slot);
		f(*obj);
	}
	// Whether a visit of this object is on the stack.
	bool visiting(ConnHandle h) const { return get(h) && slots_[h.slot].frames > 0; }
	// Destroys the object (after the outermost visit of it, when one runs);
	// every outstanding handle to it becomes stale at once.
	void erase(ConnHandle h) {
		if (!get(h)) return;
		Slot& s = slots_[h.slot];
		++s.generation;
		--live_;
		s.doomed = true;
		if (s.frames == 0) release(h.slot);
	}
	size_t size() const { return live_; }
	// Calls f(handle, T&) for every live object; f may erase the current one.
	template <class F>
	void for_each(F&& f) {
		for (uint32_t i = 0; i < slots_.size(); ++i) {
			if (slots_[i].obj && !slots_[i].doomed) f(ConnHandle{i, slots_[i].generation}, *slots_[i].obj);
		}
	}

private:
	struct Slot {
		std::unique_ptr<T> obj;
		uint32_t generation = 0;
		uint32_t frames = 0;  // visits on the stack
		bool doomed = false;  // erased; destroyed when the last visit returns
	};
	void release(uint32_t slot) {
		Slot& s = slots_[slot];
		// Move out first so a destructor that looks itself up sees it gone.
		std::unique_ptr<T> dying = std::move(s.obj);
		s.doomed = false;
		free_.push_back(slot);
		dying.reset();
	}
	std::vector<Slot> slots_;
	std::vector<uint32_t> free_;
	size_t live_ = 0;
};

}  // namespace tern::core
