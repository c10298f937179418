// Package route matches a request's host, path, method and headers against
// the configured routes and returns the most specific one.
//
// Specificity, highest first: an exact host beats a wildcard host (longer
// suffix first) beats no host; then an exact path beats a path prefix
// (longer first) beats no path; then more header conditions; then a method
// list beats any method. Config validation rejects two routes with the same
// match, so the order is total.
//
// Matching works on []byte views and allocates nothing.
package route
