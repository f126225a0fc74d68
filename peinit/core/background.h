#pragma once

// Background work: what runs beside the boot stages on threads of its own (the root device
// being found, coldplug's device scan, the packages read ahead). The stage table
// (stages/stage.h, BootBackground) names, for each piece, the stage that starts it, the stage
// that opens its gate and the stage that joins it, and what it may touch; RunStages holds the
// stages to it. This is the handle BootContext keeps: typed by the work's own class, without
// this layer knowing any stage's types.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <vector>

#include "peinit/core/result.h"

namespace peinit {

class BackgroundWork {
  public:
    // How one piece of work ended when it was joined, in join order (for the log and tests).
    struct Joined {
        std::string name;
        std::string at;  // the stage after (or, for "before STAGE", before) which it was joined
        std::optional<Error> error;  // what it failed with, nullopt when it ended well
    };

    // `work` runs under `name` from now on. `join` waits for it and says how it ended (called
    // at most once, by Join; what it throws is contained and reported); `open` lets work that
    // waits at a gate go on (may be called more than once). A null `work` starts nothing; a
    // name already running is replaced only after the older work is joined.
    template <class T>
    void Start(std::string name, std::shared_ptr<T> work, std::function<Result<void>(T&)> join,
               std::function<void(T&)> open = nullptr) {
        if (!work) return;
        Entry entry{std::move(name), work, std::type_index(typeid(T)), nullptr, nullptr};
        entry.join = [work, join = std::move(join)]() -> Result<void> {
            return join ? join(*work) : Ok();
        };
        if (open) entry.open = [work, open = std::move(open)] { open(*work); };
        Add(std::move(entry));
    }

    // The work under `name` for the stage that waits for it itself, as its own type: it is no
    // longer pending (nobody else joins it). nullptr when none is running under that name or it
    // is not a T (then it stays pending).
    template <class T>
    std::shared_ptr<T> Take(std::string_view name) {
        auto taken = TakeIf(name, std::type_index(typeid(T)));
        return std::static_pointer_cast<T>(taken);
    }

    bool Running(std::string_view name) const;
    // Opens the gate of the work under `name` (nothing when none, or it has no gate).
    void Open(std::string_view name);
    // Joins the work under `name` when it is still pending, records and returns how it ended
    // (Ok when nothing was pending). Never throws.
    Result<void> Join(std::string_view name, std::string_view at);
    // The names still pending, in the order they were started.
    std::vector<std::string> Pending() const;
    const std::vector<Joined>& joined() const { return joined_; }

    BackgroundWork() = default;
    BackgroundWork(const BackgroundWork&) = delete;
    BackgroundWork& operator=(const BackgroundWork&) = delete;
    // Whatever is still pending is joined (its own destructor stops and joins its thread).
    ~BackgroundWork() = default;

  private:
    struct Entry {
        std::string name;
        std::shared_ptr<void> work;
        std::type_index type;
        std::function<Result<void>()> join;
        std::function<void()> open;
    };
    void Add(Entry entry);
    std::shared_ptr<void> TakeIf(std::string_view name, std::type_index type);

    std::vector<Entry> pending_;
    std::vector<Joined> joined_;
};

}  // namespace peinit
