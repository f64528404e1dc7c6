use hangscope_unwind as _;
