// Package balance holds the balancing policies. A policy only picks one of
// the candidates it is given (the pool's available servers); membership,
// health and in-flight accounting live in package pool. Policies take no
// HTTP types, take randomness as a dependency, and allocate nothing per
// pick (the consistent-hash policy allocates only when the candidate set
// changes).
package balance
