//! Each product's services as the server uses them, resolved once per change: validated,
//! with their lanes. The intake routes events with them, the workers attempt deliveries
//! with them, and alerts and replay find a product's services in them.
//!
//! The store gives every change to a product's services (or its alerts) a new
//! [`Generation`] of that product. A copy is never trusted, only checked: an event routed
//! with a copy that a change has since replaced is refused at its commit
//! ([`Admission::Rerouted`]) and routed again with the product read afresh, and a claimed
//! delivery carries its product's generation, so a worker reads the product again when
//! its copy is older. That check costs one row read per event at the commit, nothing per
//! delivery; a change to one product never disturbs another.
//!
//! [`Admission::Rerouted`]: crate::store::Admission::Rerouted

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lookout::config::Instance;
use lookout::dispatch::new_delivery_id;
use lookout::payload::Event;
use lookout::settings::Settings;

use crate::lanes::{Lane, order_key};
use crate::store::{self, Generation, NewDelivery, Product, Store, validate_stored};

/// A product's services, validated, as of one generation.
pub struct Routes {
    pub product: String,
    pub generation: Generation,
    /// The configured service told about disabled targets and dead deliveries.
    pub alerts: Option<String>,
    services: Vec<Route>,
}

/// One configured service of a product.
pub struct Route {
    pub name: String,
    pub service: String,
    /// Switched off (its options kept): it gets no deliveries.
    pub enabled: bool,
    /// The validated service; `Err` with the problems when this build does not know
    /// the service or its options no longer validate: it still gets its deliveries, and
    /// the worker reports why they cannot be sent, where an operator will see it.
    pub instance: Result<Instance, String>,
    pub lane: Lane,
}

impl Routes {
    pub fn of(product: &Product, settings: &Settings) -> Routes {
        let services = product
            .instances
            .iter()
            .map(|stored| {
                let instance = validate_stored(&stored.name, &stored.service, &stored.options)
                    .map_err(|problems| {
                        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
                        shown.join("; ")
                    });
                Route {
                    lane: Lane::of(&product.id, &stored.name, instance.as_ref().ok(), settings),
                    name: stored.name.clone(),
                    service: stored.service.clone(),
                    enabled: stored.is_enabled(),
                    instance,
                }
            })
            .collect();
        Routes {
            product: product.id.clone(),
            generation: product.generation,
            alerts: product.alerts.clone(),
            services,
        }
    }

    /// A new delivery for each enabled service that listens to `event`.
    pub fn deliveries(&self, event: &Event) -> Vec<NewDelivery> {
        self.services
            .iter()
            .filter(|route| route.enabled)
            .filter(|route| {
                route
                    .instance
                    .as_ref()
                    .ok()
                    .is_none_or(|i| i.listens_to(event))
            })
            .map(|route| route.delivery(&self.product, event, new_delivery_id()))
            .collect()
    }

    /// The configured service named `name`, if the product has it.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.services.iter().find(|route| route.name == name)
    }
}

impl Route {
    /// A delivery of `event` to this service, with id `id`, in its lane.
    pub fn delivery(&self, product: &str, event: &Event, id: String) -> NewDelivery {
        let instance = self.instance.as_ref().ok();
        NewDelivery {
            id,
            instance: self.name.clone(),
            service: self.service.clone(),
            lane: self.lane.clone(),
            order_key: instance.and_then(|instance| order_key(product, instance, event)),
            shape: instance.and_then(|instance| crate::shaping::shape(product, instance, event)),
        }
    }
}

/// Products kept at most; past that the copies are dropped and read again as needed.
const MAX_PRODUCTS: usize = 10_000;

/// The products' [`Routes`], read once per change of each.
pub struct RouteCache {
    settings: Settings,
    products: Mutex<HashMap<String, Arc<Routes>>>,
}

impl RouteCache {
    /// A cache whose lanes follow `settings` (its `rate_limits`).
    pub fn new(settings: Settings) -> RouteCache {
        RouteCache {
            settings,
            products: Mutex::default(),
        }
    }

    /// The product's routes (`None`: no such product; that is not kept).
    pub async fn routes(
        &self,
        store: &dyn Store,
        product: &str,
    ) -> store::Result<Option<Arc<Routes>>> {
        if let Some(known) = self.lock().get(product) {
            return Ok(Some(known.clone()));
        }
        self.read(store, product).await
    }

    /// The product's routes as of `generation` or newer: the copy kept, unless it is
    /// older (then the product is read again). `None`: no such product.
    pub async fn at_least(
        &self,
        store: &dyn Store,
        product: &str,
        generation: Generation,
    ) -> store::Result<Option<Arc<Routes>>> {
        let known = self.lock().get(product).cloned();
        match known {
            Some(known) if known.generation >= generation => Ok(Some(known)),
            _ => self.read(store, product).await,
        }
    }

    async fn read(&self, store: &dyn Store, product: &str) -> store::Result<Option<Arc<Routes>>> {
        let Some(found) = store.product(product).await? else {
            self.lock().remove(product);
            return Ok(None);
        };
        let routes = Arc::new(Routes::of(&found, &self.settings));
        let mut products = self.lock();
        if products.len() >= MAX_PRODUCTS {
            products.clear();
        }
        // Two readers at once: the newer copy stays.
        let kept = products
            .entry(product.to_owned())
            .and_modify(|known| {
                if known.generation < routes.generation {
                    *known = routes.clone();
                }
            })
            .or_insert_with(|| routes.clone());
        Ok(Some(kept.clone()))
    }

    /// Drops the product's copy of `generation`, found out of date at a commit (a newer
    /// copy another request has read meanwhile stays).
    pub fn forget(&self, product: &str, generation: Generation) {
        let mut products = self.lock();
        if products
            .get(product)
            .is_some_and(|known| known.generation == generation)
        {
            products.remove(product);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Routes>>> {
        // Nothing is left half-done under this lock: a panic elsewhere cannot spoil it.
        self.products
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
