"""A Headwater cluster: the node list (``topology``), the front's nginx config (``nginx_conf``), and the
local runner behind ``headwater cluster up|down|status`` (``runner``, ``cli``)."""
