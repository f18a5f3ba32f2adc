"""What every jobqueue component shares: the wire format, the Redis keys, settings.

Components (`jobqueue.worker`, `jobqueue.producer`, `jobqueue.operator`) depend on this
package and never on each other.
"""
