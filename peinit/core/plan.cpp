#include "peinit/core/plan.h"
#include "peinit/core/text.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>

namespace peinit {

std::string_view StatusName(ModuleStatus status) {
    switch (status) {
        case ModuleStatus::kLoad:
            return "load";
        case ModuleStatus::kBuiltin:
            return "builtin";
        case ModuleStatus::kBlacklisted:
            return "blacklisted";
        case ModuleStatus::kMissing:
            return "missing";
        case ModuleStatus::kSkipped:
            return "skipped";
    }
    return "?";
}

const PlanEntry* Plan::Find(std::string_view name) const {
    std::size_t i = IndexOf(name);
    return i < entries.size() ? &entries[i] : nullptr;
}

std::size_t Plan::IndexOf(std::string_view name) const {
    std::string wanted = NormalizeModuleName(name);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].name == wanted) return i;
    }
    return entries.size();
}

namespace {

void AppendOptions(std::string& to, std::string_view more) {
    if (more.empty()) return;
    if (!to.empty()) to += ' ';
    to += more;
}

struct Node {
    ModuleRecord record;
    ModuleStatus status = ModuleStatus::kLoad;
    std::string reason;
    // For entries that will not load: what a dependent says about it ("dependency jbd2 is
    // blacklisted (...)"); for skipped entries, the root cause they inherited.
    std::string cause;
    std::vector<std::string> chains;
    std::vector<std::size_t> parents;
    std::vector<std::size_t> hard, pre, post;
    std::vector<std::size_t> posted_by;  // nodes that list this one as a soft `post` dependency
    std::vector<std::size_t> direct;     // requests naming it (directly or by an alias)
    bool expanded = false;
    // It will not load because a deny list says so (it, or a hard dependency, is blacklisted).
    bool denied = false;

    // The chain through this node, as its dependencies see it.
    std::string Via() const {
        return chains.empty() ? record.name : chains.front() + " -> " + record.name;
    }
};

class Planner {
  public:
    Planner(ModuleDb& db, const PlanInput& input) : db_(db), input_(input) {
        for (const auto& deny : input_.blacklist) {
            deny_[NormalizeModuleName(deny.name)].push_back(deny.source);
        }
    }

    Result<Plan> Run() {
        PEINIT_TRY(Resolve());
        FindCycles();
        PropagateSkips();
        PruneUnneeded();
        return Assemble();
    }

  private:
    // Phase 1: look up every request and walk its dependencies (breadth first, so the first
    // chain recorded for a module is a shortest one).
    Result<void> Resolve() {
        for (std::size_t r = 0; r < input_.requests.size(); ++r) {
            const ModuleRequest& req = input_.requests[r];
            auto names = PEINIT_TRY(db_.Lookup(req.name));
            if (names.empty()) {
                std::size_t i = MissingRequest(req.name);
                AddChain(i, req.origin.Describe(), std::nullopt);
                AddRoot(i, req.optional);
                AddDirect(i, r);
                continue;
            }
            for (const auto& name : names) {
                std::size_t i = PEINIT_TRY(GetNode(name));
                AddDirect(i, r);
                std::string chain = req.origin.Describe();
                if (NormalizeModuleName(req.name) != nodes_[i].record.name) {
                    chain += " -> alias " + req.name;
                }
                AddChain(i, chain, std::nullopt);
                AppendOptions(request_options_[i], req.options);
                AddRoot(i, req.optional);
            }
        }
        while (!queue_.empty()) {
            std::size_t i = queue_.front();
            queue_.pop_front();
            PEINIT_TRY(Expand(i));
        }
        return Ok();
    }

    void AddDirect(std::size_t i, std::size_t request) {
        auto& d = nodes_[i].direct;
        if (std::find(d.begin(), d.end(), request) == d.end()) d.push_back(request);
    }

    // For every node, the requests whose dependency closure reaches it (edges: hard, soft pre
    // and post, whatever their status).
    std::vector<std::vector<std::size_t>> WantedBy() const {
        std::vector<std::vector<std::size_t>> wanted(nodes_.size());
        for (std::size_t r = 0; r < input_.requests.size(); ++r) {
            std::vector<bool> seen(nodes_.size(), false);
            std::vector<std::size_t> stack;
            for (std::size_t i = 0; i < nodes_.size(); ++i) {
                const auto& d = nodes_[i].direct;
                if (std::find(d.begin(), d.end(), r) != d.end()) stack.push_back(i);
            }
            while (!stack.empty()) {
                std::size_t i = stack.back();
                stack.pop_back();
                if (seen[i]) continue;
                seen[i] = true;
                wanted[i].push_back(r);
                for (const auto* edges : {&nodes_[i].hard, &nodes_[i].pre, &nodes_[i].post}) {
                    for (std::size_t j : *edges) {
                        if (!seen[j]) stack.push_back(j);
                    }
                }
            }
        }
        return wanted;
    }

    void AddRoot(std::size_t i, bool optional) {
        if (std::find(roots_.begin(), roots_.end(), i) == roots_.end()) roots_.push_back(i);
        required_[i] = required_[i] || !optional;
    }

    void AddChain(std::size_t i, const std::string& chain, std::optional<std::size_t> parent) {
        Node& n = nodes_[i];
        if (std::find(n.chains.begin(), n.chains.end(), chain) == n.chains.end()) {
            n.chains.push_back(chain);
        }
        if (parent && std::find(n.parents.begin(), n.parents.end(), *parent) == n.parents.end()) {
            n.parents.push_back(*parent);
        }
    }

    std::size_t MissingRequest(const std::string& request) {
        std::string key = NormalizeModuleName(request);
        if (auto it = index_.find(key); it != index_.end()) return it->second;
        Node n;
        n.record.name = key;
        n.status = ModuleStatus::kMissing;
        n.reason = "no module or alias named " + request + " in the module tree";
        n.cause = "dependency " + key + " is missing";
        n.expanded = true;
        return Insert(std::move(n));
    }

    std::size_t Insert(Node n) {
        std::size_t i = nodes_.size();
        index_.emplace(n.record.name, i);
        nodes_.push_back(std::move(n));
        return i;
    }

    Result<std::size_t> GetNode(const std::string& raw_name) {
        std::string name = NormalizeModuleName(raw_name);
        if (auto it = index_.find(name); it != index_.end()) return it->second;
        Node n;
        n.record = PEINIT_TRY(db_.Describe(name));
        n.record.name = NormalizeModuleName(n.record.name);
        std::vector<std::string> sources;
        if (auto it = deny_.find(n.record.name); it != deny_.end()) sources = it->second;
        if (!n.record.denied_by.empty()) sources.push_back(n.record.denied_by);
        const std::string& m = n.record.name;
        if (n.record.builtin) {
            n.status = ModuleStatus::kBuiltin;
            if (!sources.empty()) {
                n.reason = "blacklisted (" + Join(sources, "; ") +
                           ") but built into the kernel, so already live";
            }
        } else if (!sources.empty()) {
            n.status = ModuleStatus::kBlacklisted;
            n.denied = true;
            n.reason = Join(sources, "; ");
            n.cause = "dependency " + m + " is blacklisted (" + n.reason + ")";
        } else if (n.record.path.empty()) {
            n.status = ModuleStatus::kMissing;
            n.reason = "not in the module tree";
            n.cause = "dependency " + m + " is missing";
        } else if (!n.record.file_present) {
            n.status = ModuleStatus::kMissing;
            n.reason = n.record.path + " does not exist";
            n.cause = "dependency " + m + " is missing (" + n.reason + ")";
        }
        std::size_t i = Insert(std::move(n));
        queue_.push_back(i);
        return i;
    }

    Result<void> Expand(std::size_t i) {
        if (nodes_[i].expanded) return Ok();
        nodes_[i].expanded = true;
        // Denied, missing and built-in modules pull nothing in: nothing of theirs is loaded.
        if (nodes_[i].status != ModuleStatus::kLoad) return Ok();
        const ModuleRecord rec = nodes_[i].record;  // copy: nodes_ grows below
        std::string via = nodes_[i].Via();
        for (const auto& d : rec.hard_deps) {
            std::size_t j = PEINIT_TRY(GetNode(d));
            nodes_[i].hard.push_back(j);
            AddChain(j, via, i);
        }
        for (const auto& d : rec.soft_pre) {
            std::size_t j = PEINIT_TRY(GetNode(d));
            nodes_[i].pre.push_back(j);
            AddChain(j, via, i);
        }
        for (const auto& d : rec.soft_post) {
            std::size_t j = PEINIT_TRY(GetNode(d));
            nodes_[i].post.push_back(j);
            nodes_[j].posted_by.push_back(i);
            AddChain(j, via, i);
        }
        return Ok();
    }

    bool Loadable(std::size_t i) const {
        return nodes_[i].status == ModuleStatus::kLoad ||
               nodes_[i].status == ModuleStatus::kBuiltin;
    }

    // Everything that must be live before node i starts, in the order modprobe would load it:
    // soft pre, hard dependencies (modules.dep lists the closest last), then whoever lists i as
    // a soft post dependency.
    std::vector<std::size_t> Predecessors(std::size_t i) const {
        const Node& n = nodes_[i];
        std::vector<std::size_t> out;
        auto add = [&](std::size_t j) {
            if (Loadable(j) && std::find(out.begin(), out.end(), j) == out.end()) out.push_back(j);
        };
        for (std::size_t j : n.pre) add(j);
        for (auto it = n.hard.rbegin(); it != n.hard.rend(); ++it) add(*it);
        for (std::size_t j : n.posted_by) add(j);
        return out;
    }

    // Phase 2: strongly connected components (Tarjan) of the "must be live before" graph among
    // loadable modules; every component with more than one member, or a self-loop, is a cycle.
    void FindCycles() {
        std::size_t count = nodes_.size();
        std::vector<int> order(count, -1), low(count, 0);
        std::vector<bool> on_stack(count, false);
        std::vector<std::size_t> stack;
        int counter = 0;
        std::vector<std::vector<std::size_t>> components;
        std::function<void(std::size_t)> connect = [&](std::size_t v) {
            order[v] = low[v] = counter++;
            stack.push_back(v);
            on_stack[v] = true;
            for (std::size_t w : Predecessors(v)) {
                if (order[w] < 0) {
                    connect(w);
                    low[v] = std::min(low[v], low[w]);
                } else if (on_stack[w]) {
                    low[v] = std::min(low[v], order[w]);
                }
            }
            if (low[v] == order[v]) {
                std::vector<std::size_t> comp;
                std::size_t w;
                do {
                    w = stack.back();
                    stack.pop_back();
                    on_stack[w] = false;
                    comp.push_back(w);
                } while (w != v);
                auto preds = Predecessors(v);
                bool self_loop = std::find(preds.begin(), preds.end(), v) != preds.end();
                if (comp.size() > 1 || self_loop) components.push_back(std::move(comp));
            }
        };
        for (std::size_t v = 0; v < count; ++v) {
            if (Loadable(v) && order[v] < 0) connect(v);
        }
        for (auto& comp : components) {
            std::sort(comp.begin(), comp.end());
            std::string cycle = DescribeCycle(comp);
            errors_.push_back("dependency cycle: " + cycle);
            for (std::size_t v : comp) {
                nodes_[v].status = ModuleStatus::kSkipped;
                nodes_[v].reason = "in dependency cycle " + cycle;
                nodes_[v].cause =
                    "dependency " + nodes_[v].record.name + " is in dependency cycle " + cycle;
            }
        }
    }

    // "a -> b -> a": each module waits for the next. Starts at the member reached first and
    // follows a shortest path back to it inside the component.
    std::string DescribeCycle(const std::vector<std::size_t>& comp) const {
        std::size_t start = comp.front();
        std::set<std::size_t> members(comp.begin(), comp.end());
        std::map<std::size_t, std::size_t> came_from;
        std::deque<std::size_t> q{start};
        std::vector<std::size_t> path;
        while (!q.empty() && path.empty()) {
            std::size_t v = q.front();
            q.pop_front();
            for (std::size_t w : Predecessors(v)) {
                if (!members.count(w)) continue;
                if (w == start) {
                    for (std::size_t x = v; x != start; x = came_from[x]) path.push_back(x);
                    break;
                }
                if (!came_from.count(w)) {
                    came_from[w] = v;
                    q.push_back(w);
                }
            }
        }
        std::reverse(path.begin(), path.end());
        std::string out = nodes_[start].record.name;
        for (std::size_t v : path) out += " -> " + nodes_[v].record.name;
        return out + " -> " + nodes_[start].record.name;
    }

    // Phase 3: a module whose hard dependency will not load cannot load either.
    void PropagateSkips() {
        bool changed = true;
        while (changed) {
            changed = false;
            for (std::size_t i = 0; i < nodes_.size(); ++i) {
                if (nodes_[i].status != ModuleStatus::kLoad) continue;
                for (std::size_t j : nodes_[i].hard) {
                    if (Loadable(j)) continue;
                    nodes_[i].status = ModuleStatus::kSkipped;
                    nodes_[i].cause = nodes_[j].cause;
                    nodes_[i].denied = nodes_[j].denied;
                    nodes_[i].reason = nodes_[j].cause + " via " + nodes_[i].Via();
                    changed = true;
                    break;
                }
            }
        }
    }

    // Phase 4: keep only what a loadable request needs.
    void PruneUnneeded() {
        std::vector<bool> needed(nodes_.size(), false);
        std::deque<std::size_t> q;
        for (std::size_t r : roots_) {
            if (Loadable(r) && !needed[r]) {
                needed[r] = true;
                q.push_back(r);
            }
        }
        while (!q.empty()) {
            std::size_t i = q.front();
            q.pop_front();
            for (const auto* edges : {&nodes_[i].hard, &nodes_[i].pre, &nodes_[i].post}) {
                for (std::size_t j : *edges) {
                    if (Loadable(j) && !needed[j]) {
                        needed[j] = true;
                        q.push_back(j);
                    }
                }
            }
        }
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            if (nodes_[i].status != ModuleStatus::kLoad || needed[i]) continue;
            std::vector<std::string> wanters;
            for (std::size_t p : nodes_[i].parents) wanters.push_back(nodes_[p].record.name);
            nodes_[i].status = ModuleStatus::kSkipped;
            nodes_[i].reason = "only wanted by " + Join(wanters, ", ") + ", which will not load";
        }
    }

    Result<Plan> Assemble() {
        // Load order: depth-first, predecessors first, from the requests in their order.
        std::vector<std::size_t> order;
        std::vector<bool> placed(nodes_.size(), false);
        std::function<void(std::size_t)> place = [&](std::size_t i) {
            if (placed[i] || !Loadable(i)) return;
            placed[i] = true;
            for (std::size_t p : Predecessors(i)) place(p);
            order.push_back(i);
            for (std::size_t j : nodes_[i].post) place(j);
        };
        for (std::size_t r : roots_) place(r);
        for (std::size_t i = 0; i < nodes_.size(); ++i) place(i);
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            if (!Loadable(i)) order.push_back(i);
        }

        std::vector<std::size_t> position(nodes_.size());
        for (std::size_t k = 0; k < order.size(); ++k) position[order[k]] = k;

        const std::vector<std::vector<std::size_t>> wanted = WantedBy();
        Plan plan;
        for (std::size_t i : order) {
            Node& n = nodes_[i];
            PlanEntry e;
            e.name = n.record.name;
            e.path = n.record.path;
            e.status = n.status;
            e.reason = n.reason;
            for (std::size_t j : n.hard) e.hard_deps.push_back(nodes_[j].record.name);
            if (n.hard.empty() && n.status != ModuleStatus::kLoad) e.hard_deps = n.record.hard_deps;
            for (std::size_t j : n.pre) e.soft_pre.push_back(nodes_[j].record.name);
            for (std::size_t j : n.post) e.soft_post.push_back(nodes_[j].record.name);
            e.options = n.record.options;
            for (const auto& opt : input_.options) {
                if (NormalizeModuleName(opt.module) == n.record.name) {
                    AppendOptions(e.options, opt.options);
                }
            }
            if (auto it = request_options_.find(i); it != request_options_.end()) {
                AppendOptions(e.options, it->second);
            }
            e.requested_by = n.chains;
            e.direct = n.direct;
            e.wanted_by = wanted[i];
            e.ignored_install_command = n.record.install_command;
            if (e.Loadable()) {
                for (std::size_t p : Predecessors(i)) e.waits_for.push_back(position[p]);
                std::sort(e.waits_for.begin(), e.waits_for.end());
            }
            plan.entries.push_back(std::move(e));
        }

        std::vector<std::string> errors = errors_;
        std::vector<std::string> denied;
        for (std::size_t r : roots_) {
            const Node& n = nodes_[r];
            std::string requested = Join(n.chains, ", ");
            switch (n.status) {
                case ModuleStatus::kLoad:
                case ModuleStatus::kBuiltin:
                    continue;
                case ModuleStatus::kBlacklisted:
                    denied.push_back(n.record.name + ": blacklisted (" + n.reason +
                                     "), requested by " + requested);
                    break;
                case ModuleStatus::kMissing:
                    if (!required_[r]) continue;  // optional and absent: not an error
                    errors.push_back(n.record.name + ": missing (" + n.reason + "), requested by " +
                                     requested);
                    break;
                case ModuleStatus::kSkipped:
                    (n.denied ? denied : errors).push_back(n.record.name + ": " + n.reason);
                    break;
            }
        }
        plan.errors = std::move(errors);
        plan.denied = std::move(denied);
        plan.warnings = db_.TakeWarnings();
        return plan;
    }

    ModuleDb& db_;
    const PlanInput& input_;
    std::map<std::string, std::vector<std::string>> deny_;
    std::vector<Node> nodes_;
    std::map<std::string, std::size_t> index_;
    std::deque<std::size_t> queue_;
    std::vector<std::size_t> roots_;
    std::map<std::size_t, bool> required_;  // root -> wanted by at least one non-optional request
    std::map<std::size_t, std::string> request_options_;
    std::vector<std::string> errors_;
};

}  // namespace

Result<Plan> BuildPlan(ModuleDb& db, const PlanInput& input) { return Planner(db, input).Run(); }

std::string RequestOrigin::Describe() const {
    switch (kind) {
        case Kind::kUnit:
            return "unit " + name;
        case Kind::kCmdline:
            return "modules_load=";
        case Kind::kColdplug:
            return "coldplug " + name;
        case Kind::kDemand:
            return "demand " + name;
        case Kind::kOther:
            return name;
    }
    return name;
}

}  // namespace peinit
