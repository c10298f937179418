// Package docs holds checks over the repository's shipped text: the
// operator documentation's links resolve, and no document, comment or
// message speaks of the project's tracker instead of xlb and its users.
package docs
