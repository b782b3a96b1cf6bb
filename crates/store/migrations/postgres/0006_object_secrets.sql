-- Secret values of pipelines and exporter bindings (their `secrets` maps and destination header
-- values), kept apart from the bodies: JSON `{"secrets": {name: value}, "headers": {destination:
-- {header: value}}}`, sealed with the server key (`v1:...`, see `TokenKey::seal`), or '{}' when
-- there are none. Endpoints get the column only so the three object
-- tables share one column list; theirs stays '{}'.
ALTER TABLE pipelines ADD COLUMN secrets TEXT NOT NULL DEFAULT '{}';
ALTER TABLE endpoints ADD COLUMN secrets TEXT NOT NULL DEFAULT '{}';
ALTER TABLE exporter_bindings ADD COLUMN secrets TEXT NOT NULL DEFAULT '{}';
