// The billing page's card form: Stripe.js's card element, confirmed through a SetupIntent (the issuer may ask
// to authenticate the card), then the confirmed payment method is sent to Canopy. The card number never
// reaches Canopy.
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  if (!form || typeof Stripe !== "function") return;
  var submit = document.getElementById("card-submit");
  var errorBox = document.getElementById("card-error");
  var csrfToken = form.querySelector("input[type=hidden]").value;
  var stripe = Stripe(form.getAttribute("data-publishable-key"));
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  submit.disabled = false;

  function showError(text) {
    errorBox.textContent = text || "Something went wrong. Please try again.";
    errorBox.hidden = false;
    submit.disabled = false;
  }

  function post(url, body) {
    body.csrf_token = csrfToken;
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        if (!response.ok) throw new Error(answer.error || answer.detail || "The request failed (" + response.status + ").");
        return answer;
      });
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit.disabled = true;
    errorBox.hidden = true;
    post(form.getAttribute("data-setup-url"), { attempt: form.getAttribute("data-attempt") })
      .then(function (setup) {
        return stripe.confirmCardSetup(setup.client_secret, { payment_method: { card: card } });
      })
      .then(function (result) {
        if (result.error) throw new Error(result.error.message);
        var method = result.setupIntent.payment_method;
        return post(form.getAttribute("data-card-url"), {
          payment_method_id: typeof method === "string" ? method : method.id,
        });
      })
      .then(function (answer) { window.location.assign(answer.next); })
      .catch(function (error) { showError(error.message); });
  });
})();
