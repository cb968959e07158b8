"""One scrape of one target, in-flight calls shared by many scrapes, upstream slots, the target pool."""
