// The boot's timeline: `peinitctl timeline` as text and as SVG.
#include "peinit/core/status.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "peinit/core/status_format.h"

namespace peinit {

using status_format::FormatUsAsMs;

namespace {

// When each module's dependencies had all been attempted, as the module stage recorded it.
std::map<std::string, int64_t> ReadyTimes(const Status& s) {
    std::map<std::string, int64_t> ready;
    for (const auto& m : s.modules) {
        if (m.ready_us >= 0) ready[m.name] = m.ready_us;
    }
    return ready;
}

std::string Colour(const std::string& status) {
    if (status == "loaded") return "#2e7d32";
    if (status == "already-loaded") return "#0277bd";
    if (status == "builtin") return "#00897b";
    if (status == "failed") return "#c62828";
    if (status == "missing") return "#ef6c00";
    if (status == "blacklisted") return "#424242";
    if (status == "no-device") return "#90a4ae";
    return "#9e9e9e";  // skipped
}

std::string XmlEscape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

// A tick step (in us) of 1, 2 or 5 times a power of ten giving about 8 ticks.
int64_t TickStep(int64_t span_us) {
    int64_t step = 1;
    while (span_us / step > 10) {
        if (span_us / (step * 2) <= 10) return step * 2;
        if (span_us / (step * 5) <= 10) return step * 5;
        step *= 10;
    }
    return step;
}

}  // namespace

std::string RenderTimelineText(const Status& s) {
    std::ostringstream out;
    if (!s.modules_present) return "no module record\n";
    int64_t span = 1;
    for (const auto& m : s.modules) span = std::max(span, m.start_us + m.duration_us);
    constexpr int kCols = 50;
    size_t width = 6;
    for (const auto& m : s.modules) width = std::max(width, m.name.size());
    auto ready = ReadyTimes(s);
    out << "module stage: " << s.modules.size() << " modules, " << FormatUsAsMs(span)
        << " ms (each column " << FormatUsAsMs(span / kCols + 1) << " ms; '.' waiting for a "
        << "dependency, '#' loading, 'x' failed)\n";
    for (const auto& m : s.modules) {
        std::string bar(kCols, ' ');
        int from = static_cast<int>(m.start_us * kCols / span);
        int to = static_cast<int>((m.start_us + m.duration_us) * kCols / span);
        if (auto it = ready.find(m.name); it != ready.end()) {
            for (int i = static_cast<int>(it->second * kCols / span); i < from && i < kCols; ++i) {
                bar[i] = '.';
            }
        }
        char fill = m.status == ModuleOutcome::Status::kFailed ? 'x' : m.Succeeded() ? '#' : '-';
        for (int i = from; i <= std::max(from, to - 1) && i < kCols; ++i) bar[i] = fill;
        std::string line = m.name + std::string(width + 2 - m.name.size(), ' ') + "|" + bar + "| " +
                           FormatUsAsMs(m.start_us) + " +" + FormatUsAsMs(m.duration_us) + " ms " +
                           m.StatusName();
        out << line << "\n";
    }
    return out.str();
}

std::string RenderTimelineSvg(const Status& s) {
    constexpr int kLabelW = 170, kChartW = 800, kRowH = 22, kTop = 60, kBarH = 14;
    int64_t span = 1;
    for (const auto& m : s.modules) span = std::max(span, m.start_us + m.duration_us);
    int64_t step = TickStep(span);
    span = ((span + step - 1) / step) * step;  // end on a tick
    auto x = [&](int64_t us) {
        return kLabelW + static_cast<double>(us) * kChartW / static_cast<double>(span);
    };
    const int rows = static_cast<int>(s.modules.size());
    const int legend_y = kTop + rows * kRowH + 40;
    const int height = legend_y + 40;
    const int width = kLabelW + kChartW + 40;
    std::map<std::string, int> row_of;
    for (int i = 0; i < rows; ++i) row_of[s.modules[i].name] = i;
    auto ready = ReadyTimes(s);

    std::ostringstream out;
    char buf[512];
    out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    out << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << width
        << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << " " << height << "\">\n";
    out << "<style>text{font-family:sans-serif;font-size:11px;fill:#212121}"
           ".tick{stroke:#e0e0e0}.dep{stroke:#757575;stroke-width:0.8;fill:none}"
           ".title{font-size:14px;font-weight:bold}</style>\n";
    out << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height
        << "\" fill=\"#ffffff\"/>\n";
    ModuleCounts c = CountModules(s);
    out << "<text class=\"title\" x=\"10\" y=\"20\">peinit module stage: " << rows << " modules, "
        << c.ok << " ok, " << c.failed << " failed, " << c.skipped + c.missing + c.no_device << " not loaded, "
        << c.blacklisted << " blacklisted; " << s.modules_total_ms << " ms, " << s.workers
        << " workers</text>\n";
    // Axis with ticks and labels.
    out << "<g class=\"axis\">\n";
    for (int64_t t = 0; t <= span; t += step) {
        std::snprintf(buf, sizeof buf,
                      "<line class=\"tick\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                      "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                      x(t), kTop - 8, x(t), kTop + rows * kRowH, x(t), kTop - 12,
                      FormatUsAsMs(t).c_str());
        out << buf;
    }
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">time since the start of "
                  "the module stage (ms)</text>\n<text x=\"10\" y=\"%d\">module</text>\n",
                  kLabelW + kChartW / 2.0, kTop + rows * kRowH + 20, kTop - 12);
    out << buf << "</g>\n";
    // Bars: a light segment from "dependencies live" to the start, then the load itself.
    for (int i = 0; i < rows; ++i) {
        const ModuleRow& m = s.modules[i];
        int y = kTop + i * kRowH + (kRowH - kBarH) / 2;
        std::string colour = Colour(m.StatusName());
        std::snprintf(buf, sizeof buf, "<text x=\"%d\" y=\"%d\">%s</text>\n", 10, y + kBarH - 3,
                      XmlEscape(m.name).c_str());
        out << buf;
        if (auto it = ready.find(m.name); it != ready.end() && it->second < m.start_us) {
            std::snprintf(buf, sizeof buf,
                          "<rect class=\"wait\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                          "fill=\"%s\" fill-opacity=\"0.25\"><title>%s waited %s ms after its "
                          "dependencies were live</title></rect>\n",
                          x(it->second), y, x(m.start_us) - x(it->second), kBarH, colour.c_str(),
                          XmlEscape(m.name).c_str(), FormatUsAsMs(m.start_us - it->second).c_str());
            out << buf;
        }
        double w = std::max(1.5, x(m.start_us + m.duration_us) - x(m.start_us));
        std::string tip = m.name + ": " + m.StatusName() + ", start " + FormatUsAsMs(m.start_us) +
                          " ms, " + FormatUsAsMs(m.duration_us) + " ms";
        if (!m.reason.empty()) tip += " (" + m.reason + ")";
        std::snprintf(
            buf, sizeof buf,
            "<rect class=\"bar\" data-module=\"%s\" data-status=\"%s\" x=\"%.1f\" "
            "y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s</title></rect>\n",
            XmlEscape(m.name).c_str(), m.StatusName().c_str(), x(m.start_us), y, w, kBarH, colour.c_str(),
            XmlEscape(tip).c_str());
        out << buf;
        std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%d\">%s ms</text>\n",
                      x(m.start_us) + w + 3, y + kBarH - 3, FormatUsAsMs(m.duration_us).c_str());
        out << buf;
    }
    // Dependency lines: from the end of a dependency's bar to the start of its dependent's.
    for (int i = 0; i < rows; ++i) {
        const ModuleRow& m = s.modules[i];
        for (const auto& d : m.waits_for) {
            auto it = row_of.find(d);
            if (it == row_of.end()) continue;
            const ModuleRow& dep = s.modules[it->second];
            int64_t dep_end = dep.start_us + dep.duration_us;
            if (dep_end > m.start_us) continue;
            std::snprintf(buf, sizeof buf, "<path class=\"dep\" d=\"M%.1f %d V%d H%.1f\"/>\n",
                          x(dep_end), kTop + it->second * kRowH + kRowH / 2,
                          kTop + i * kRowH + kRowH / 2, x(m.start_us));
            out << buf;
        }
    }
    // Legend.
    out << "<g class=\"legend\">\n";
    int lx = 10;
    for (const char* status :
         {"loaded", "already-loaded", "builtin", "failed", "missing", "skipped", "blacklisted",
          "no-device"}) {
        std::snprintf(buf, sizeof buf,
                      "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                      "<text x=\"%d\" y=\"%d\">%s</text>\n",
                      lx, legend_y, Colour(status).c_str(), lx + 16, legend_y + 10, status);
        out << buf;
        lx += 30 + static_cast<int>(std::string_view(status).size()) * 7;
    }
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#2e7d32\" "
                  "fill-opacity=\"0.25\"/><text x=\"%d\" y=\"%d\">waiting after its "
                  "dependencies were live</text>\n<path class=\"dep\" d=\"M%d %d h20\"/>"
                  "<text x=\"%d\" y=\"%d\">dependency</text>\n",
                  lx, legend_y, lx + 16, legend_y + 10, lx + 280, legend_y + 6, lx + 304,
                  legend_y + 10);
    out << buf << "</g>\n</svg>\n";
    return out.str();
}

}  // namespace peinit
