package deliver

// LaneSignal is the lane state change tests observe (see Dispatcher.signal).
type LaneSignal = laneSignal

// SetLaneSignal installs f as d's lane test signal; call it before Run.
func SetLaneSignal(d *Dispatcher, f func(endpoint string, s LaneSignal)) {
	d.signal = f
}
