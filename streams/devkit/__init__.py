"""Everything that runs omnirouter on one machine and nothing that production needs.

    embedded.py   a Tansu Kafka broker and a redis-server on free ports (tests and `make run`)
    run.py        `omnirouter dev`: broker, Redis, gateway, workers, delivery, sample data
    samples/      the sample agents and customers `make run` loads

Deploys never import this package: topics are created by `omnirouter topics`
(streams/admin.py), and the processes get their broker and Redis from the environment.
"""
