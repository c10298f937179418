package health

// Machine is the rise/fall hysteresis of one target: it changes state only
// after Rise consecutive successes (down → up) or Fall consecutive failures
// (up → down), so a flapping host does not flap the Maglev tables.
type Machine struct {
	Rise, Fall int
	known, up  bool
	streak     int // consecutive results contradicting the current state
}

// Observe feeds one check result and reports whether the state changed. The
// first result sets the state directly.
func (m *Machine) Observe(ok bool) (changed bool) {
	if !m.known {
		m.known, m.up, m.streak = true, ok, 0
		return true
	}
	if ok == m.up {
		m.streak = 0
		return false
	}
	m.streak++
	need := m.Fall
	if ok {
		need = m.Rise
	}
	if m.streak >= max(need, 1) {
		m.up, m.streak = ok, 0
		return true
	}
	return false
}

// Up reports the current state; Known is false before the first result.
func (m *Machine) Up() bool { return m.up }

// Known reports whether a result has been observed.
func (m *Machine) Known() bool { return m.known }
