// Package shopload is a load generator shaped like the shop: it simulates
// users, not requests. Each virtual user has its own cookie jar and its own
// keep-alive connections; it browses, looks at products, logs in, adds to
// its cart and checks out, with think times between pages, and reopens its
// connections now and then so that the L4 tier gets to move them. Users
// arrive open-loop (Poisson at a configured rate, ramped up and down) or
// closed-loop (a fixed number at a time); a run is bounded by a user count
// and a duration and stops by itself.
//
// The summary counts requests per route, errors by cause, latency
// percentiles, requests per app server and per L7 host (read from response
// headers the demo app sets), whether each user kept its checkout server,
// and how many established connections broke.
package shopload
