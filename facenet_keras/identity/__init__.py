"""Who is who: gallery storage behind one interface (storage never runs inference), nearest-neighbour
search, and the decisions (enrol, verify, recognise) in :mod:`.recognition`."""
