package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/m365bridge/m365bridge/bridge/notify"
)

var (
	descNotifyState = prometheus.NewDesc("m365bridge_change_notifications",
		"1 for the channel's change-notification state: subscribed, pending, retrying (polling meanwhile) or unsupported (a shared mailbox: adaptive polling). No series: change_notifications off or the channel not syncing.", []string{"channel", "state"}, nil)
	descNotifyReceived = prometheus.NewDesc("m365bridge_change_notifications_received_total",
		"Change notifications accepted for the channel (clientState matched) since the daemon started.", []string{"channel"}, nil)
	descNotifyWakes = prometheus.NewDesc("m365bridge_change_notification_wakes_total",
		"Immediate sync rounds asked for by change notifications, missed-notification and new-subscription catch-ups, since the daemon started.", []string{"channel"}, nil)
)

var notifyStates = []string{notify.StateSubscribed, notify.StatePending, notify.StateRetrying, notify.StateUnsupported}

// collectNotifications adds the change-notification series of the
// channels whose runner reports a subscription state.
func collectNotifications(ch chan<- prometheus.Metric, views []channelView) {
	for _, v := range views {
		if v.Runner == nil || v.Runner.Notifications == nil {
			continue
		}
		n := v.Runner.Notifications
		for _, st := range notifyStates {
			val := 0.0
			if n.State == st {
				val = 1
			}
			ch <- prometheus.MustNewConstMetric(descNotifyState, prometheus.GaugeValue, val, v.Name, st)
		}
		ch <- prometheus.MustNewConstMetric(descNotifyReceived, prometheus.CounterValue, float64(n.Notifications), v.Name)
		ch <- prometheus.MustNewConstMetric(descNotifyWakes, prometheus.CounterValue, float64(n.Wakes), v.Name)
	}
}
