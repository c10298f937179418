package proxy

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// seriesSet is every label set one generation resolved, per vector. After
// a swap, the label sets of the old generation that the new one lacks are
// deleted, so that routes, pools and servers removed at runtime or by a
// reload stop being exported. It is built and used only when a generation
// is made or replaced, never per request.
type seriesSet map[labelDeleter]map[string][]string

// labelDeleter is what the metric vectors have in common for pruning.
type labelDeleter interface {
	DeleteLabelValues(lvs ...string) bool
}

func (s seriesSet) add(v labelDeleter, values ...string) {
	sets := s[v]
	if sets == nil {
		sets = map[string][]string{}
		s[v] = sets
	}
	// \xff cannot occur in UTF-8 label values, so keys do not collide.
	sets[strings.Join(values, "\xff")] = values
}

// counter resolves vec's child for values and remembers the label set.
func (s seriesSet) counter(vec *prometheus.CounterVec, values ...string) prometheus.Counter {
	s.add(vec, values...)
	return vec.WithLabelValues(values...)
}

func (s seriesSet) gauge(vec *prometheus.GaugeVec, values ...string) prometheus.Gauge {
	s.add(vec, values...)
	return vec.WithLabelValues(values...)
}

func (s seriesSet) observer(vec *prometheus.HistogramVec, values ...string) prometheus.Observer {
	s.add(vec, values...)
	return vec.WithLabelValues(values...)
}

// deleteMissing deletes from their vectors the label sets of s that next
// does not have. Requests of the old generation still in flight may count
// into a deleted child: that count is lost with the server it was for.
func (s seriesSet) deleteMissing(next seriesSet) {
	for v, sets := range s {
		for k, values := range sets {
			if _, ok := next[v][k]; !ok {
				v.DeleteLabelValues(values...)
			}
		}
	}
}
