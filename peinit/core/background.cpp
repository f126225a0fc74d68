#include "peinit/core/background.h"

#include <algorithm>

#include "peinit/core/contain.h"

namespace peinit {

void BackgroundWork::Add(Entry entry) {
    if (Running(entry.name)) (void)Join(entry.name, "restart");
    pending_.push_back(std::move(entry));
}

std::shared_ptr<void> BackgroundWork::TakeIf(std::string_view name, std::type_index type) {
    auto it = std::find_if(pending_.begin(), pending_.end(),
                           [&](const Entry& e) { return e.name == name; });
    if (it == pending_.end() || it->type != type) return nullptr;
    std::shared_ptr<void> work = std::move(it->work);
    pending_.erase(it);
    return work;
}

bool BackgroundWork::Running(std::string_view name) const {
    return std::any_of(pending_.begin(), pending_.end(),
                       [&](const Entry& e) { return e.name == name; });
}

void BackgroundWork::Open(std::string_view name) {
    for (Entry& e : pending_) {
        if (e.name == name && e.open)
            (void)Contain("", [&]() -> Result<void> {
                e.open();
                return Ok();
            });
    }
}

Result<void> BackgroundWork::Join(std::string_view name, std::string_view at) {
    auto it = std::find_if(pending_.begin(), pending_.end(),
                           [&](const Entry& e) { return e.name == name; });
    if (it == pending_.end()) return Ok();
    Entry entry = std::move(*it);
    pending_.erase(it);
    Result<void> ended = Contain("", entry.join);
    joined_.push_back(
        {entry.name, std::string(at), ended ? std::nullopt : std::optional<Error>(ended.error())});
    return ended;
}

std::vector<std::string> BackgroundWork::Pending() const {
    std::vector<std::string> names;
    for (const Entry& e : pending_) names.push_back(e.name);
    return names;
}

}  // namespace peinit
